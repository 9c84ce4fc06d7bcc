"""The bundle's golden vectors (``golden.npz``): a fixed, seeded sample of held-out images with PyTorch's FP32
logits for them and the logits every file produced on the build machine, so any device can re-prove the bundle
without PyTorch (``edgecls verify``)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EdgeclsError, UsageError
from .tolerance import REFERENCE

if TYPE_CHECKING:  # numpy is imported where golden vectors are read or written: the CLI starts without it
    import numpy as np

GOLDEN = "golden.npz"
GOLDEN_IMAGES = 64


@dataclass
class Golden:
    images: np.ndarray  # uint8 NHWC at the model's input size, exactly what PyTorch was fed
    labels: np.ndarray  # int64 ground truth
    names: list[str]  # where each image came from (e.g. test/cat/0042.jpg)
    encoded: list[bytes]  # the original encoded files, for the end-to-end row
    logits: dict[str, np.ndarray] = field(default_factory=dict)  # REFERENCE and format name → float32 (N, C)


def write_golden(path: Path, golden: Golden) -> None:
    import numpy as np

    blobs = [np.frombuffer(b, dtype=np.uint8) for b in golden.encoded]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    arrays = {"images": golden.images, "labels": golden.labels.astype(np.int64),
              "names": np.asarray(golden.names, dtype=str), "encoded": np.concatenate(blobs) if blobs else
              np.zeros(0, np.uint8), "encoded_offsets": offsets,
              **{f"logits.{k}": v.astype(np.float32) for k, v in golden.logits.items()}}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    Path(path).write_bytes(buffer.getvalue())


def read_golden(folder: Path, manifest: dict, formats: tuple[str, ...] | None = None) -> Golden:
    """The bundle's golden vectors; a bundle exported before they existed gets a clear message.

    ``formats``: only the images, their names and the logits of PyTorch and of these formats, no labels and no
    encoded files (np.load decompresses a member only when it is read): what proving one file needs.
    """
    if not manifest.get("golden"):
        raise UsageError(f"{folder} carries no golden vectors (exported by edgecls "
                         f"{manifest.get('edgecls_version', '< 0.2')}); re-export it with `edgecls export` "
                         "to make it verifiable on a device")
    import numpy as np

    try:
        with np.load(Path(folder) / manifest["golden"]["path"], allow_pickle=False) as z:
            wanted = [k for k in z.files if k.startswith("logits.") and
                      (formats is None or k.split(".", 1)[1] in (REFERENCE, *formats))]
            golden = Golden(images=z["images"], labels=np.zeros(0, np.int64), names=[str(n) for n in z["names"]],
                            encoded=[], logits={k.split(".", 1)[1]: z[k] for k in wanted})
            if formats is None:
                offsets, blob = z["encoded_offsets"], z["encoded"].tobytes()
                golden.labels = z["labels"]
                golden.encoded = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            return golden
    except (OSError, KeyError, ValueError) as e:
        raise EdgeclsError(f"cannot read the golden vectors of {folder}: {e}") from None
