"""A stream of images through decode threads and engine threads at once, results in input order.

How the cores are divided, from the core count and two costs measured on the stream itself (`Costs`):

- Decode threads (`decoders_for`). One core: decode in line; a thread would only add switching.
  Otherwise decoding's share of the cores, ``ceil(cores × d / (d + e))`` with ``d`` and ``e`` the
  core-milliseconds one image costs to decode and to run through the engine, at least one; but no more
  than the GIL lets decoding use: Pillow releases the GIL only inside its C decoder, and about ``GIL_MS``
  of every image's decode is Python (opening the file, parsing the header, setting up the crop) that runs
  one thread at a time. A 32x32 CIFAR JPEG is almost all such work (it decodes slower in two threads than
  in one); a 640x480 photo is mostly C.
- Engine threads (`EngineLanes`): the engine keeps every core it was opened with, and batches run in
  their own threads while the caller turns finished ones into predictions. Its threads sleep between
  batches (onnxruntime opened for streaming, `engines.OnnxRuntimeEngine`; OpenVINO's do not spin), so
  the operating system shares the cores in the ratio of the two sides' work, which no whole-thread split
  can do on 2 cores. onnxruntime runs as one single-thread replica per engine thread, whole batches side
  by side, so no operator waits at a barrier for the thread a decoder took the core from
  (`OnnxRuntimeEngine.replicas`). OpenVINO's own equivalent, one stream per thread, measured no better:
  it runs as one engine.

Every figure behind these choices: benchmarks/results/stream-pipeline-records-2026-12-05.md.

The first chunk is decoded in the caller's thread and timed, and the classifier times the engine on the
first batch: that prices both sides, and a stream of one chunk never starts a thread.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from itertools import chain, islice
from typing import Callable, Iterable, Iterator, TypeVar

# Python work per decoded image that holds the GIL: a whole 32x32 JPEG decode (stream-pipeline-records-2026-12-05.md)
GIL_MS = 0.14
CHUNKS_PER_DECODER = 2  # chunks queued per decode thread: one being decoded, one ready when it finishes

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Costs:
    decode_ms: float  # core-milliseconds to decode one image, in one thread
    engine_ms: float  # core-milliseconds of the engine per image (wall time × its threads)


def decoders_for(cores: int, costs: Costs) -> int:
    """Decode threads for a stream with these costs on ``cores`` cores (0: decode in line); the module's rule."""
    if cores <= 1:
        return 0
    share = cores * costs.decode_ms / max(costs.decode_ms + costs.engine_ms, 1e-9)
    gil_bound = max(1, math.floor(costs.decode_ms / GIL_MS))
    return max(1, min(math.ceil(share), gil_bound, cores))


def decode_ahead(items: Iterable[Item], decode: Callable[[int, Item], Result], chunk: int,
                 plan: Callable[[float], int | None]) -> Iterator[Result]:
    """``decode(n, item)`` of every item, in input order, decoded ``chunk`` items at a time.

    ``plan(decode_ms)`` answers, before each chunk after the first (so never for a stream of one chunk), how
    many decode threads to start from the decode cost measured so far; None means "not yet" (the engine has
    no price yet) and that chunk is also decoded in line. Once it answers, the number holds for the rest of
    the stream.
    """
    numbered = enumerate(items)
    spent, decoded = 0.0, 0
    batch = list(islice(numbered, chunk))
    while True:
        t0 = time.perf_counter()  # in line, nothing else running: wall time is core time
        results = [decode(n, item) for n, item in batch]
        spent += time.perf_counter() - t0
        decoded += len(batch)
        yield from results
        batch = list(islice(numbered, chunk))
        if not batch:  # the stream ended in line: no thread was needed
            return
        threads = plan(1000 * spent / decoded)
        if threads is not None:
            break
    rest = chain(batch, numbered)
    if threads <= 0:
        yield from (decode(n, item) for n, item in rest)
        return
    yield from _decode_in_threads(rest, decode, chunk, threads)


def _decode_in_threads(numbered: Iterator[tuple[int, Item]], decode: Callable[[int, Item], Result], chunk: int,
                       threads: int) -> Iterator[Result]:
    from concurrent.futures import ThreadPoolExecutor  # here: a cold single-image `infer` never needs it

    def decode_chunk(batch: list[tuple[int, Item]]) -> list[Result]:
        return [decode(n, item) for n, item in batch]

    pool = ThreadPoolExecutor(threads, thread_name_prefix="edgecls-decode")
    ahead: deque = deque()
    try:
        while True:
            while len(ahead) < CHUNKS_PER_DECODER * threads:
                batch = list(islice(numbered, chunk))
                if not batch:
                    break
                ahead.append(pool.submit(decode_chunk, batch))
            if not ahead:
                return
            yield from ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class EngineLanes:
    """Batches run on several engines at once, each engine in its own thread (an engine is used by one thread
    at a time); ``submit`` returns a Future of ``fn(*args, engine)``."""

    def __init__(self, engines: list):
        import queue
        from concurrent.futures import ThreadPoolExecutor

        self.width = len(engines)
        self._idle = queue.SimpleQueue()
        for engine in engines:
            self._idle.put(engine)
        self._pool = ThreadPoolExecutor(self.width, thread_name_prefix="edgecls-engine")

    def submit(self, fn: Callable, *args):
        def on_an_idle_engine():
            engine = self._idle.get()
            try:
                return fn(*args, engine)
            finally:
                self._idle.put(engine)

        return self._pool.submit(on_an_idle_engine)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
