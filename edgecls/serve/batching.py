"""Dynamic batching: concurrent requests share one engine call, on one dedicated engine thread.

A batch closes when it holds ``max_batch`` images, or when nothing more is on its way: requests that
were admitted but are still being read or decoded (`arriving`) are waited for, at most ``max_wait_s``.
So a lone request never waits, and under load the batch grows while the engine is busy. A single
image too large to decode on the event loop is decoded in the decode pool and queued from there,
without a trip back through the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .decode import decode_upload, decodes_inline, open_upload
from .errors import ApiError
from .metrics import Metrics
from .scoring import Scored, score

if TYPE_CHECKING:
    from .models import ServedModel


@dataclass
class Job:
    model: "ServedModel"    # the model the request started with; it finishes on it
    x: np.ndarray           # float32 NCHW, normalized
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Batcher:
    def __init__(self, max_batch: int, max_wait_s: float, max_queue: int, metrics: Metrics):
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self._jobs: deque[Job] = deque()
        self._queued = 0       # images in _jobs
        self._arriving = 0     # admitted requests not yet submitted
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="edgecls-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Run what is queued, then end the engine thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    @property
    def accepting(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def admit(self) -> "Ticket":
        """A place in the queue for one request, or 503 when the queue is full."""
        with self._cond:
            if self._stopping or self._queued + self._arriving >= self.max_queue:
                raise ApiError(503, "overloaded", f"server busy ({self.max_queue} images queued); retry shortly",
                               {"Retry-After": "1"})
            self._arriving += 1
            self.metrics.arriving.set(self._arriving)
        return Ticket(self)

    def _leave(self, job: Job | None) -> None:
        with self._cond:
            self._arriving -= 1
            self.metrics.arriving.set(self._arriving)
            if job is not None:
                self._jobs.append(job)
                self._queued += len(job.x)
                self.metrics.queue_depth.set(self._queued)
            self._cond.notify()

    def _decode_and_queue(self, model: "ServedModel", img: Image.Image, future: asyncio.Future,
                          loop: asyncio.AbstractEventLoop) -> None:
        """In the decode pool: the decoded image joins the queue, or the request learns why it cannot."""
        try:
            x = decode_upload(img, model.classifier.spec)
        except Exception as e:  # BadImage, or a bug: either way the request must get an answer
            self._leave(None)
            loop.call_soon_threadsafe(_fail, future, e)
            return
        self._leave(Job(model, x, future, loop))

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait_s
            while self._queued < self.max_batch and self._arriving and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            batch = self._take()
            self.metrics.queue_depth.set(self._queued)
            return batch

    def _take(self) -> list[Job]:
        """Whole jobs of one model, up to max_batch images (a bigger job runs alone)."""
        first = self._jobs.popleft()
        batch, size = [first], len(first.x)
        while self._jobs and self._jobs[0].model is first.model and size + len(self._jobs[0].x) <= self.max_batch:
            job = self._jobs.popleft()
            batch.append(job)
            size += len(job.x)
        self._queued -= size
        return batch

    def _run(self, batch: list[Job]) -> None:
        x = batch[0].x if len(batch) == 1 else np.concatenate([job.x for job in batch])
        start = time.perf_counter()
        try:
            scored = score(batch[0].model.classifier.logits_from_input(x))
            results = _split(scored, batch)
        except Exception as e:  # an engine failure must reach every waiting request, not kill this thread
            failure = ApiError(500, "engine", f"engine failed: {type(e).__name__}: {e}")
            results = [failure] * len(batch)
        self.metrics.engine_seconds.observe(time.perf_counter() - start)
        self.metrics.batch_size.observe(len(x))
        self.metrics.images.inc(len(x))
        batch[0].loop.call_soon_threadsafe(_deliver, batch, results)


class Ticket:
    """One admitted request: `submit` its input once, or leave the queue when it ends without doing so."""

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self._open = True

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        if self._open:
            self._open = False
            self._batcher._leave(None)

    async def submit_image(self, pool: Executor, model: "ServedModel", data: bytes) -> Scored:
        """`submit` the image ``data`` holds: a small one decoded here, a larger one in ``pool`` and queued
        from there (no trip back through the event loop between decoding and batching). Raises BadImage
        for an unusable image."""
        img = open_upload(data)
        if decodes_inline(img):
            return await self.submit(model, decode_upload(img, model.classifier.spec))
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._open = False
        pool.submit(self._batcher._decode_and_queue, model, img, future, loop)
        return await future

    async def submit(self, model: "ServedModel", x: np.ndarray) -> Scored:
        """Logits (and their ranking) for ``x`` (float32 NCHW) from ``model``, computed in some batch."""
        loop = asyncio.get_running_loop()
        job = Job(model, x, loop.create_future(), loop)
        self._open = False
        self._batcher._leave(job)
        return await job.future


def _split(scored: Scored, batch: list[Job]) -> list[Scored]:
    out, start = [], 0
    for job in batch:
        out.append(scored.rows(start, start + len(job.x)))
        start += len(job.x)
    return out


def _deliver(batch: list[Job], results: list) -> None:
    for job, result in zip(batch, results):
        if job.future.done():  # the client went away
            continue
        if isinstance(result, Exception):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
