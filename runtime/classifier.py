"""`Classifier`: load an exported model, feed it images, get labels and probabilities."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.host import thread_budget
from edgecls.progress import track
from edgecls.spec import ModelSpec, spec_from_metadata

from .engines import PINNED
from .model_files import ModelChoice, model_candidates
from .pipeline import Costs, EngineLanes, decode_ahead, decoders_for
from .preprocess import ImageInput, load_rgb, normalize, resize_for_model
from .proof import NOT_LOADED, Proof
from .proven import first_proven

# One item's own error while it is decoded: `UnreadableImage` (an EdgeclsError) for anything Pillow raised on
# its bytes (see `edgecls.imageops.pillow_decoding`), EdgeclsError for an unusable array. Anything else is a
# bug of ours and propagates.
DECODE_ERRORS = (EdgeclsError,)


@dataclass
class Prediction:
    label: str
    index: int
    prob: float
    top_k: list[tuple[str, float]]
    source: str | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Failure:
    source: str
    error: str


@dataclass
class _Inferred:
    order: list[list[int]]  # per image, class indices by descending logit (top_k of them)
    probs: list[list[float]]
    prepare_s: float  # stacking and normalizing the batch
    model_s: float  # the engine call


@dataclass
class _Decoded:
    source: str
    pixels: np.ndarray  # uint8 HxWx3 at the model's input size
    decode_s: float
    resize_s: float


class Classifier:
    def __init__(self, engine, spec: ModelSpec, choice: ModelChoice, proof: Proof = NOT_LOADED):
        self.engine = engine
        self.spec = spec
        self.choice = choice
        self.proof = proof  # whether the file is proven on this machine (set by `load`)
        self._engine_ms: float | None = None  # core-ms per image on the last batch, for `pipeline.decoders_for`
        self._replicas: list | None = None

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", threads: int | None = None,
             spec: ModelSpec | None = None, device: str | None = None, precision: str = PINNED,
             throughput: bool = False, streaming: bool | None = None,
             allow_failed_proof: bool = False) -> "Classifier":
        """``path``: an .onnx file, an OpenVINO .xml, or an export folder with manifest.json.

        Labels and preprocessing come from the model's own metadata; ``spec`` is only for
        models exported without it. ``device``: an OpenVINO device (CPU, GPU, NPU, AUTO) or an
        onnxruntime provider (cpu, cuda, …); ``precision="default"`` lets OpenVINO pick its own.
        ``throughput=True``: many images will follow, so `auto` picks the engine that streams fastest
        on this CPU rather than the one that starts fastest (see `auto_engines`). ``streaming`` (default: as
        ``throughput``): the engine's threads leave the cores to other work between batches, as a stream's
        decoders or a server's event loop need (`engines.OnnxRuntimeEngine`).

        A file of an export bundle is proven on this machine before it answers (`runtime.proof`; the verdict is
        ``.proof``): a folder's file that fails its golden check here is passed over for the next, with one line
        on stderr; a failing file named alone raises `ProofFailed`. ``allow_failed_proof``: where no candidate
        passes, the first answers anyway.
        """
        streaming = throughput if streaming is None else streaming

        def open_one(choice: ModelChoice) -> "Classifier":
            engine = choice.open(threads, device, precision, streaming=streaming)
            stored = spec_from_metadata(engine.metadata)
            if stored is None and spec is None:
                raise EdgeclsError(f"{choice.path} carries no edgecls metadata (labels, mean/std, input size); "
                                   "pass spec=ModelSpec(...) to use it anyway")
            return cls(engine, spec or stored, choice)

        candidates = model_candidates(Path(path), backend, device, throughput)
        return first_proven(candidates, open_one, precision, device, allow_failed_proof)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5, batch_size: int = 64,
                workers: int | None = None) -> Prediction | list[Prediction]:
        """One input gives one Prediction, a list (or an NxHxWxC array) gives a list; bad inputs raise."""
        if not _is_many(images):
            return self._predict_one(images, top_k)
        items = list(images)
        workers = 0 if len(items) == 1 else workers  # one image: a thread would only add latency
        results = list(self.classify(items, top_k=top_k, batch_size=batch_size, workers=workers))
        failures = [r for r in results if isinstance(r, Failure)]
        if failures:
            raise EdgeclsError(f"{failures[0].source}: {failures[0].error}")
        return results

    def _predict_one(self, image: ImageInput, top_k: int) -> Prediction:
        """One input straight into a batch of one, without `classify`'s generators (batch-1 latency)."""
        decoded = decode_one(0, image, self.spec)
        if isinstance(decoded, Failure):
            raise EdgeclsError(f"{decoded.source}: {decoded.error}")
        return self._run_batch([decoded], max(1, min(top_k, len(self.classes))))[0]

    def classify(self, items: Iterable[ImageInput], top_k: int = 5, batch_size: int = 64,
                 workers: int | None = None) -> Iterator[Prediction | Failure]:
        """Lenient streaming form, in input order: a Failure for an unreadable item, then carry on.

        ``workers``: threads decoding ahead while the engine runs (0: decode in this thread); by default the
        rule of `edgecls.runtime.pipeline`, from this machine's cores and what decoding and the engine
        cost on this stream. A stream of one batch decodes in line and starts no thread.
        """
        top_k = max(1, min(top_k, len(self.classes)))
        lanes: EngineLanes | None = None  # engine threads, started with the decode threads

        def plan(decode_ms: float) -> int | None:
            nonlocal lanes
            threads = self._decoders(decode_ms) if workers is None else workers
            if threads:
                lanes = EngineLanes(self.stream_engines())
            return threads

        batches: deque = deque()  # batches started, in input order
        pending: list[Failure | _Decoded] = []
        decoded = 0
        try:
            for result in decode_ahead(items, partial(decode_one, spec=self.spec), batch_size, plan):
                pending.append(result)
                decoded += isinstance(result, _Decoded)
                if decoded == batch_size:
                    batches.append(self._start(pending, top_k, lanes))
                    pending, decoded = [], 0
                    while batches and (lanes is None or len(batches) > 2 * lanes.width):
                        yield from self._finish(*batches.popleft())
            batches.append(self._start(pending, top_k, lanes))
            while batches:
                yield from self._finish(*batches.popleft())
        finally:
            if lanes is not None:
                lanes.close()

    def _decoders(self, decode_ms: float) -> int | None:
        """Decode threads for a stream whose images cost ``decode_ms`` each; None until the engine has a price."""
        if self._engine_ms is None:
            return None
        return decoders_for(thread_budget(), Costs(decode_ms, self._engine_ms))

    def stream_engines(self) -> list:
        """What a stream's batches run on, side by side: onnxruntime's single-thread replicas
        (`OnnxRuntimeEngine.replicas`), else this engine alone; opened once, then kept."""
        if self._replicas is None:
            make = getattr(self.engine, "replicas", None)
            self._replicas = make() if make else [self.engine]
        return self._replicas

    def logits(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Model output for a uint8 NHWC batch already at the input size."""
        return self.logits_from_input(normalize(batch_uint8, self.spec))

    def _start(self, pending: list, top_k: int, lanes: EngineLanes | None) -> tuple:
        """A batch's inference: run here, or handed to the engine lanes (a Future)."""
        ok = [p for p in pending if isinstance(p, _Decoded)]
        if not ok:
            return pending, ok, None
        if lanes is None:
            return pending, ok, self._infer(ok, top_k, self.engine)
        return pending, ok, lanes.submit(self._infer, ok, top_k)

    def _finish(self, pending: list, ok: list, inferred) -> Iterator[Prediction | Failure]:
        if inferred is not None and not isinstance(inferred, _Inferred):  # a Future from the lanes
            inferred = inferred.result()
        predictions = iter(self._predictions(ok, inferred) if ok else [])
        for p in pending:
            yield next(predictions) if isinstance(p, _Decoded) else p

    def _run_batch(self, decoded: list["_Decoded"], top_k: int) -> list[Prediction]:
        return self._predictions(decoded, self._infer(decoded, top_k, self.engine))

    def _infer(self, decoded: list["_Decoded"], top_k: int, engine) -> "_Inferred":
        t0 = time.perf_counter()
        pixels = decoded[0].pixels[None] if len(decoded) == 1 else np.stack([d.pixels for d in decoded])
        x = normalize(pixels, self.spec)
        t1 = time.perf_counter()
        logits = self.logits_from_input(x, engine)
        t2 = time.perf_counter()
        self._engine_ms = 1000 * (t2 - t1) / len(decoded) * getattr(engine, "threads", thread_budget())
        order, probs = rank(logits, top_k)
        return _Inferred(order, probs, t1 - t0, t2 - t1)

    def _predictions(self, decoded: list["_Decoded"], inferred: "_Inferred") -> list[Prediction]:
        share = 1000.0 / len(decoded)
        out = []
        for d, indices, probs in zip(decoded, inferred.order, inferred.probs):
            ranked = [(self.classes[i], prob) for i, prob in zip(indices, probs)]
            timing = {"decode": 1000 * d.decode_s, "preprocess": 1000 * d.resize_s + share * inferred.prepare_s,
                      "model": share * inferred.model_s}
            out.append(Prediction(ranked[0][0], indices[0], probs[0], ranked, d.source, timing))
        return out

    def logits_from_input(self, x: np.ndarray, engine=None) -> np.ndarray:
        """Engine output for normalized NCHW input; a static-batch model gets zero-padded chunks."""
        engine = engine or self.engine
        fixed = engine.fixed_batch
        if fixed is None or fixed == len(x):
            return engine.run(x)
        outs = []
        for start in range(0, len(x), fixed):
            chunk = x[start:start + fixed]
            padded = np.concatenate([chunk, np.zeros((fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outs.append(engine.run(padded)[:len(chunk)])
        return np.concatenate(outs)


def decode_one(n: int, item: ImageInput, spec: ModelSpec) -> Failure | _Decoded:
    name = str(item) if isinstance(item, (str, Path)) else f"<image {n}>"
    t0 = time.perf_counter()
    try:
        if _is_model_ready(item, spec):  # already what the model takes: no Pillow round trip
            return _Decoded(name, item, 0.0, time.perf_counter() - t0)
        img = load_rgb(item, spec.input_size)
        t1 = time.perf_counter()
        pixels = resize_for_model(img, spec)
    except DECODE_ERRORS as e:
        return Failure(name, str(e))
    return _Decoded(name, pixels, t1 - t0, time.perf_counter() - t1)


def decode_all(items: Sequence[ImageInput], spec: ModelSpec) -> Iterator[np.ndarray | Failure]:
    """Each item as the uint8 HxWx3 the model takes, or its Failure, in order, one at a time in this thread.

    The one way to decode images outside `Classifier.classify`, for callers that feed an engine themselves
    (`benchmark`, and `serve` for several images in one request): it is the classifier's own per-item
    decoding, so a file gets the same pixels, and the same refusal, as `edgecls infer` gives it.
    """
    for n, item in enumerate(items):
        result = decode_one(n, item, spec)
        yield result if isinstance(result, Failure) else result.pixels


def decode_array(paths: Sequence[Path], spec: ModelSpec) -> np.ndarray:
    """uint8 NHWC of ``paths`` by `decode_all`, for a measurement that needs every image: EdgeclsError
    naming the first one that cannot be decoded."""
    out = np.empty((len(paths), spec.input_size, spec.input_size, 3), dtype=np.uint8)
    for i, result in enumerate(track(decode_all(paths, spec), len(paths), f"decoding {len(paths)} images")):
        if isinstance(result, Failure):
            raise EdgeclsError(f"cannot decode {result.source}: {result.error}")
        out[i] = result
    return out


def _is_model_ready(item, spec: ModelSpec) -> bool:
    return (isinstance(item, np.ndarray) and item.dtype == np.uint8
            and item.shape == (spec.input_size, spec.input_size, 3))


def rank(logits: np.ndarray, top_k: int | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Per row, class indices by descending logit and their probabilities, as plain lists (one conversion).

    A stable sort: exact ties, which INT8 logits have, go to the lower index, as ``argmax`` does.
    Probabilities in float64 on both paths, so one image and a batch give the same numbers.
    """
    if len(logits) == 1:  # plain Python: after an engine call, numpy's per-call cost is most of batch 1's overhead
        order, probs = _rank_row(logits[0].tolist(), top_k)
        return [order], [probs]
    order = np.argsort(-logits, axis=1, kind="stable")[:, :top_k]
    return order.tolist(), np.take_along_axis(softmax(logits), order, axis=1).tolist()


def _rank_row(row: list[float], top_k: int | None) -> tuple[list[int], list[float]]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:top_k]  # stable, ties keep index order
    return order, [exps[i] / total for i in order]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise, in float64 like `_rank_row`'s plain Python floats."""
    e = np.subtract(logits, logits.max(axis=1, keepdims=True), dtype=np.float64)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e


def _is_many(images) -> bool:
    if isinstance(images, np.ndarray):
        return images.ndim == 4
    return isinstance(images, (list, tuple))
