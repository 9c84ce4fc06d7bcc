"""Accuracy scores shared by the trainer (PyTorch) and the torch-free runtime: one definition, so both count alike."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    return np.bincount(true * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(pred: np.ndarray, true: np.ndarray, classes: tuple[str, ...] | list[str]) -> dict:
    """Accuracy, per-class accuracy (of the classes ``true`` holds: a folder may hold only some) and the
    confusion matrix, as `edgecls eval` reports them for a checkpoint and for an exported file."""
    cm = confusion_matrix(pred, true, len(classes))
    per_class = {c: float(cm[i, i] / cm[i].sum()) for i, c in enumerate(classes) if cm[i].sum()}
    return {"accuracy": float((pred == true).mean()) if len(true) else 0.0, "per_class": per_class,
            "n": int(len(true)), "confusion": cm.tolist(), "classes": list(classes)}
