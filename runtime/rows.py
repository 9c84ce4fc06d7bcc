"""The JSON object of one classified image, shared by `edgecls infer --json` and `edgecls serve`."""

from __future__ import annotations

from .classifier import Failure, Prediction


def prediction_row(p: Prediction, show_time: bool = False) -> dict:
    row = {"path": p.source, "label": p.label, "index": p.index, "prob": round(p.prob, 6),
           "top_k": [[label, round(prob, 6)] for label, prob in p.top_k]}
    if show_time:
        row["time_ms"] = {k: round(v, 3) for k, v in p.timing_ms.items()}
    return row


def failure_row(f: Failure) -> dict:
    return {"path": f.source, "error": f.error}
