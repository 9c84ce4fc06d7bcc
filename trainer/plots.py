"""PNG plots a person would rather look at than read: curves, confusion matrix, prediction grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecls.atomic import atomic_path
from edgecls.scores import confusion_matrix


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker=".")
    ax_loss.set(title="train loss", xlabel="epoch")
    ax_acc.plot(epochs, [100 * h["val_acc"] for h in history], marker=".", color="tab:green")
    ax_acc.set(title="validation accuracy (%)", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_confusion(pred: np.ndarray, true: np.ndarray, classes, path: Path) -> None:
    plt = _pyplot()
    cm = confusion_matrix(np.asarray(pred), np.asarray(true), len(classes))
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * k, 1 + 0.6 * k))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion (accuracy {np.trace(cm) / max(1, cm.sum()):.2%})")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    _save(fig, path)


def plot_grid(images: np.ndarray, true: np.ndarray, pred: np.ndarray, classes, path: Path, cols: int = 8) -> None:
    """Images titled 'true / predicted', wrong predictions in red."""
    plt = _pyplot()
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, p in zip(axes.flat, images, true, pred):
        ax.imshow(img)
        ax.set_title(f"{classes[t]}\n{classes[p]}", fontsize=7, color="black" if t == p else "red")
    _save(fig, path)
