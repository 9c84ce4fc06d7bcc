"""The streaming pipeline (issue 29): the rule that divides the cores, with its costs injected, and a stream
decoded ahead in threads giving exactly what decoding in line gives, errors and bugs included."""

from __future__ import annotations

import threading

import pytest

from edgecls.runtime import Classifier, Failure
from edgecls.runtime.pipeline import GIL_MS, Costs, decode_ahead, decoders_for

from .conftest import REPO

CIFAR_LIKE = Costs(decode_ms=0.11, engine_ms=0.30)  # a 32x32 JPEG, ResNet-20 INT8 (2-core EPYC, measured)
PHOTO_LIKE = Costs(decode_ms=1.20, engine_ms=0.30)  # a 640x480 camera JPEG, same engine


@pytest.mark.parametrize("cores, costs, expected", [
    (1, PHOTO_LIKE, 0),                          # one core: decode in line
    (2, CIFAR_LIKE, 1),                          # decoding's share 0.54 of 2 cores: one thread
    (2, PHOTO_LIKE, 2),                          # share 1.6: two threads, both cores when the engine sleeps
    (16, CIFAR_LIKE, 1),                         # share 4.3, but the GIL serializes a small image's decode
    (16, PHOTO_LIKE, int(1.20 // GIL_MS)),       # share 12.8, capped by what the GIL lets decoding use
    (8, Costs(decode_ms=0.5, engine_ms=5.0), 1),  # a heavy engine: share 0.7, still one thread ahead
    (4, Costs(decode_ms=4.0, engine_ms=0.0), 4),  # free engine: every core decodes
])
def test_decoders_follow_the_rule(cores, costs, expected):
    assert decoders_for(cores, costs) == expected


def recording_decode(log: list, fail_at: int | None = None):
    def decode(n: int, item: str) -> str:
        log.append((n, threading.current_thread().name))
        if n == fail_at:
            raise ZeroDivisionError("a bug of ours")
        return item.upper()
    return decode


def test_plan_is_asked_until_it_answers_then_threads_decode_in_order():
    log, asked = [], []

    def plan(decode_ms: float) -> int | None:
        asked.append(decode_ms)
        return None if len(asked) < 2 else 3  # the engine's price arrives after the second chunk

    items = [f"img{i}" for i in range(100)]
    out = list(decode_ahead(items, recording_decode(log), 8, plan))
    assert out == [i.upper() for i in items]
    assert len(asked) == 2 and all(ms >= 0 for ms in asked)
    in_line = {n for n, name in log if name == threading.current_thread().name}
    assert in_line == set(range(16))  # the first two chunks, in this thread
    pool = {name for n, name in log if n >= 16}
    assert len(pool) <= 3 and all(name.startswith("edgecls-decode") for name in pool)


def test_a_bug_in_a_decode_thread_propagates():
    with pytest.raises(ZeroDivisionError, match="a bug of ours"):
        list(decode_ahead([f"img{i}" for i in range(64)], recording_decode([], fail_at=40), 8, lambda ms: 2))


def test_leaving_a_stream_early_stops_its_threads():
    stream = decode_ahead((f"img{i}" for i in range(10_000)), recording_decode([]), 8, lambda ms: 2)
    assert [next(stream) for _ in range(20)] == [f"IMG{i}" for i in range(20)]
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("edgecls-decode")]


def test_classifier_prices_both_sides_and_uses_the_rules_answer(cifar_dir, tmp_path, monkeypatch):
    """The classifier hands the rule the decode cost of this stream and the engine's cost on its first batch,
    and its stream (unreadable files in the middle included) equals decoding in line."""
    import edgecls.runtime.classifier as classifier

    priced: list[Costs] = []

    def rule(cores: int, costs: Costs) -> int:
        priced.append(costs)
        return 2

    monkeypatch.setattr(classifier, "decoders_for", rule)
    good = sorted((cifar_dir / "test" / "dog").iterdir())[:150]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good[0].read_bytes()[:300])
    items = [*good[:70], broken, tmp_path / "missing.jpg", *good[70:]]
    clf = Classifier.load(REPO / "artifacts" / "reference" / "exports")
    in_line = list(clf.classify(items, batch_size=32, workers=0))
    ahead = list(clf.classify(items, batch_size=32))
    assert len(priced) == 1 and priced[0].decode_ms > 0 and priced[0].engine_ms > 0
    assert [r.source for r in ahead] == [str(p) for p in items]
    assert [type(r) for r in ahead] == [type(r) for r in in_line]
    assert isinstance(ahead[70], Failure) and isinstance(ahead[71], Failure)
    assert [(r.label, r.top_k) for r in ahead if not isinstance(r, Failure)] == \
        [(r.label, r.top_k) for r in in_line if not isinstance(r, Failure)]


def test_leaving_a_classify_stream_early_stops_its_threads(cifar_dir):
    clf = Classifier.load(REPO / "artifacts" / "reference" / "exports")
    files = sorted((cifar_dir / "test" / "ship").iterdir())[:600]
    stream = clf.classify(files, batch_size=32, workers=1)
    first = [next(stream) for _ in range(100)]  # decode and engine threads are running by now
    assert [p.source for p in first] == [str(f) for f in files[:100]]
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(("edgecls-decode", "edgecls-engine"))]


def test_a_stream_of_one_chunk_never_asks_the_plan():
    asked = []
    out = list(decode_ahead([f"img{i}" for i in range(8)], recording_decode([]), 8, asked.append))
    assert out == [f"IMG{i}" for i in range(8)] and asked == []
