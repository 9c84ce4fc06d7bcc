"""`edgecls benchmark`: real subprocess runs on a small trained ResNet-20, with small settings."""

from __future__ import annotations

import json

import pytest

from edgecls.runtime.benchmark import table_order
from edgecls.shipped import reference_bundle

from .conftest import assert_fp32_row, assert_one_line_error, run_cli

ROWS = table_order()
KEYS = {"format", "engine", "precision", "size_bytes", "accuracy", "agreement", "max_abs_dlogit", "latency_ms_p50",
        "latency_ms_p95", "latency_ms_p99", "throughput_ips", "batch_size", "peak_rss_bytes", "threads"}
FAST = ("--check-images", "200", "--latency-runs", "20", "--throughput-runs", "2")


def bench(checkpoint, cifar_dir, cache_dir, *extra: str):
    return run_cli("benchmark", str(checkpoint), "--data", str(cifar_dir), "--cache-dir", str(cache_dir), *FAST,
                   *extra)


# Exported by the benchmark itself into a temporary folder: PyTorch's rows and the core formats with their INT8
# files. The edge formats are measured from the session's export of them (`edge_export_dir`, which
# tests/test_edge_formats.py needs anyway): converting them again here cost a minute of every test run.
FRESH = ("pytorch", "torchscript", "onnx", "onnx-int8", "openvino", "openvino-int8")


@pytest.fixture(scope="module")
def fresh_rows(trained_checkpoint, edge_export_dir, cifar_dir, cache_dir) -> list[dict]:
    """Every format's row: the core ones exported by the benchmark itself, the edge ones from their export."""
    rows = []
    for names, export in ((FRESH, ()), ([n for n in ROWS if n not in FRESH], ("--export", str(edge_export_dir)))):
        result = bench(trained_checkpoint, cifar_dir, cache_dir, "--json", "--formats", ",".join(names), *export)
        assert result.returncode == 0, result.stdout + result.stderr
        rows += json.loads(result.stdout)
    return rows


def test_json_has_one_row_per_format_with_every_key(fresh_rows):
    assert [r["format"] for r in fresh_rows] == list(ROWS)
    for row in fresh_rows:
        assert KEYS <= set(row), row
        assert row["size_bytes"] > 0 and 0 < row["accuracy"] <= 1 and row["threads"] >= 1
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"] <= row["latency_ms_p99"]
        assert row["throughput_ips"] > 0 and row["peak_rss_bytes"] > 0


def test_fp32_rows_match_pytorch_and_int8_rows_are_smaller(fresh_rows):
    rows = {r["format"]: r for r in fresh_rows}
    reference = rows["pytorch"]  # what the others are measured against: its speed and accuracy, no agreement
    assert reference["agreement"] is None and reference["agreement_images"] == 0 and reference["accuracy"] > 0.1
    for name in ("torchscript", "onnx", "openvino"):
        row = rows[name]
        assert_fp32_row(row["agreement"], row["near_ties"], row["agreement_images"], row["max_rel_dlogit"], name)
        moved_hits = abs(row["accuracy"] - reference["accuracy"]) * row["accuracy_images"]
        assert round(moved_hits) <= row["near_ties"], row  # accuracy moves only by the excused near-ties
    for name in ("onnx-int8", "openvino-int8"):
        assert rows[name]["size_bytes"] < rows[name.removesuffix("-int8")]["size_bytes"] / 2


def test_existing_export_markdown_table(export_dir, trained_checkpoint, cifar_dir, cache_dir):
    result = bench(trained_checkpoint, cifar_dir, cache_dir, "--export", str(export_dir), "--markdown",
                   "--formats", "onnx,openvino-int8")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| format | size | accuracy") and lines[1].startswith("|---|")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| ONNX FP32", "| OpenVINO INT8"]


def test_plain_table_is_the_default(export_dir, trained_checkpoint, cifar_dir, cache_dir):
    result = bench(trained_checkpoint, cifar_dir, cache_dir, "--export", str(export_dir), "--formats", "pytorch")
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["format", "size", "accuracy"] and row.startswith("PyTorch eager")


@pytest.mark.parametrize("args,fragment", [
    (("--formats", "tflite"), "unknown --formats 'tflite'"),
    (("--latency-runs", "0"), "--latency-runs must be at least 1"),
    (("--json", "--markdown"), "choose one of --json and --markdown"),
])
def test_bad_options_are_one_line_errors(trained_checkpoint, cifar_dir, cache_dir, args, fragment):
    assert_one_line_error(bench(trained_checkpoint, cifar_dir, cache_dir, *args), fragment)


def test_missing_checkpoint_is_one_line_error(tmp_path, cifar_dir):
    assert_one_line_error(run_cli("benchmark", str(tmp_path / "nope.pt"), "--data", str(cifar_dir)), "does not exist")


def test_export_of_another_checkpoint_is_refused(trained_checkpoint, cifar_dir, cache_dir):
    result = bench(trained_checkpoint, cifar_dir, cache_dir, "--export", str(reference_bundle()),
                   "--formats", "onnx")
    assert_one_line_error(result, "exported from a different checkpoint")
