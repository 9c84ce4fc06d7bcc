"""`edgecls benchmark` rows as a plain aligned table or a GitHub markdown table (torch-free: both paths use it)."""

from __future__ import annotations

from edgecls.format_table import FORMATS

from .benchmark import PYTORCH

LABELS = {PYTORCH: "PyTorch eager", **{name: f.label for name, f in FORMATS.items()}}
HEADERS = ("format", "size", "accuracy", "agreement", "max |Δlogit|", "p50 ms", "p95 ms", "p99 ms", "img/s",
           "peak RSS", "threads")


def label(row: dict) -> str:
    """The format's label, with the engine when it is not the one the format is built for."""
    name = LABELS[row["format"]]
    preferred = FORMATS[row["format"]].engine if row["format"] in FORMATS else row["engine"]
    return name if row["engine"] == preferred else f"{name} ({row['engine']})"


def cells(row: dict) -> tuple[str, ...]:
    pct = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
    return (label(row), f"{row['size_bytes'] / 1e6:.2f} MB", pct(row["accuracy"]), pct(row["agreement"]),
            "n/a" if row["max_abs_dlogit"] is None else f"{row['max_abs_dlogit']:.1e}",
            f"{row['latency_ms_p50']:.3f}", f"{row['latency_ms_p95']:.3f}", f"{row['latency_ms_p99']:.3f}",
            f"{row['throughput_ips']:,.0f}", f"{row['peak_rss_bytes'] / 1e6:.0f} MB", str(row["threads"]))


def headers(rows: list[dict]) -> tuple[str, ...]:
    batches = sorted({r["batch_size"] for r in rows})
    batch = f"img/s @{batches[0]}" if len(batches) == 1 else "img/s"
    return tuple(batch if h == "img/s" else h for h in HEADERS)


def plain_table(rows: list[dict]) -> str:
    table = [headers(rows), *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in table)


def markdown_table(rows: list[dict]) -> str:
    head = [h.replace("|", "\\|") for h in headers(rows)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells(r)) + " |" for r in rows])
