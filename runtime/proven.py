"""Answer only from a file proven here: the first candidate that passes, or a one-line refusal.

``Classifier.load`` opens candidates in the order `model_files` gives them and proves each (`runtime.proof`).
A failing file is closed and the next one taken, and one line on stderr says what failed, what answers instead
and where the details are. A failing file named alone (or a folder none of whose files passes) is refused with
verify's line for it, unless the caller allows a failed proof: then the first candidate answers anyway.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable

from edgecls.errors import ProofFailed

from .engines import engine_version
from .model_files import ModelChoice
from .proof import Proof, lookup, prove

PREFIX = "edgecls: "


def first_proven(candidates: Iterable[ModelChoice], open_one: Callable, precision: str, device: str | None,
                 allow_failed: bool):
    """``open_one(choice)``: the Classifier answering from ``choice``; its ``proof`` is set here."""
    failed: list[tuple[ModelChoice, Proof]] = []
    for choice in candidates:
        found = lookup(choice, precision, device)
        if found.verdict is not None and found.verdict.failed:  # known to fail here: not even opened
            failed.append((choice, found.verdict))
            continue
        clf = open_one(choice)
        clf.proof = prove(clf, found)
        if not clf.proof.failed:
            if failed:
                tell(passed_over(failed, choice))
            return clf
        failed.append((choice, clf.proof))
        del clf  # the engine goes with its last reference
    if not allow_failed:
        raise ProofFailed(refusal(failed))
    choice, proof = failed[0]
    clf = open_one(choice)
    clf.proof = proof
    tell(f"{_fails(choice, proof)}; loaded anyway, as allowed. {_details(choice)}")
    return clf


def label(choice: ModelChoice) -> str:
    return f"{choice.format} ({choice.engine} {engine_version(choice.engine)})"


def passed_over(failed: list[tuple[ModelChoice, Proof]], chosen: ModelChoice) -> str:
    reasons = "; ".join(_fails(choice, proof) for choice, proof in failed)
    return f"{reasons}; using {label(chosen)} instead. {_details(chosen)}"


def refusal(failed: list[tuple[ModelChoice, Proof]]) -> str:
    """The error for a file (or folder) that may not answer: verify's line for each file that failed."""
    choice = failed[0][0]
    if len(failed) == 1:
        proof = failed[0][1]
        head = (f"{choice.path} fails its golden check on this CPU with {choice.engine} "
                f"{engine_version(choice.engine)}: {choice.format}: {proof.reason}")
    else:
        head = (f"no file of {choice.folder} passes its golden check on this CPU ("
                + "; ".join(f"{c.format}: {p.reason}" for c, p in failed) + ")")
    return f"{head}; --allow-failed-proof answers from {choice.path.name} anyway. {_details(choice)}"


def _fails(choice: ModelChoice, proof: Proof) -> str:
    return f"{label(choice)} fails its golden check on this CPU ({proof.reason})"


def _details(choice: ModelChoice) -> str:
    return f"Details: edgecls verify {choice.folder}"


def tell(line: str) -> None:
    print(PREFIX + line, file=sys.stderr, flush=True)
