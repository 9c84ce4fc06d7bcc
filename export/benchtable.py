"""`edgecls benchmark` rows as a plain aligned table or a GitHub markdown table."""

from __future__ import annotations

LABELS = {"pytorch": "PyTorch eager", "torchscript": "TorchScript", "onnx": "ONNX FP32", "onnx-int8": "ONNX INT8",
          "openvino": "OpenVINO FP32 (f32)", "openvino-int8": "OpenVINO INT8"}
HEADERS = ("format", "size", "accuracy", "agreement", "max |Δlogit|", "p50 ms", "p95 ms", "img/s @64",
           "threads")


def cells(row: dict) -> tuple[str, ...]:
    return (LABELS[row["format"]], f"{row['size_bytes'] / 1e6:.2f} MB", f"{row['accuracy']:.2%}",
            f"{row['agreement']:.2%}", f"{row['max_abs_dlogit']:.1e}", f"{row['latency_ms_p50']:.3f}",
            f"{row['latency_ms_p95']:.3f}", f"{row['throughput_ips']:,.0f}", str(row["threads"]))


def plain_table(rows: list[dict]) -> str:
    table = [HEADERS, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in table)


def markdown_table(rows: list[dict]) -> str:
    head = [h.replace("|", "\\|") for h in HEADERS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells(r)) + " |" for r in rows])
