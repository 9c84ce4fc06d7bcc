"""Logits → ranked classes and probabilities, once per engine batch on the engine thread.

One vectorized pass per batch (softmax, a stable sort of the logits: exact ties, which INT8 logits
have, go to the lower class index, as in `Classifier`) instead of a few small numpy calls per request
on the event loop, which then only slices plain lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecls.runtime import Prediction
from edgecls.runtime.classifier import rank


@dataclass
class Scored:
    logits: np.ndarray          # float32 (n, classes): what the v2 routes return
    order: list[list[int]]      # per row, every class index by descending logit
    probs: list[list[float]]    # per row, the softmax probabilities in that order

    def rows(self, start: int, stop: int) -> "Scored":
        return Scored(self.logits[start:stop], self.order[start:stop], self.probs[start:stop])


def score(logits: np.ndarray) -> Scored:
    return Scored(logits, *rank(logits))


def predictions(scored: Scored, classes: tuple[str, ...], top_k: int) -> list[Prediction]:
    """The top ``top_k`` of each row as `Classifier` reports them (plain Python, no numpy)."""
    top_k = max(1, min(top_k, len(classes)))
    out = []
    for indices, probs in zip(scored.order, scored.probs):
        ranked = [(classes[i], p) for i, p in zip(indices[:top_k], probs[:top_k])]
        out.append(Prediction(ranked[0][0], indices[0], probs[0], ranked))
    return out
