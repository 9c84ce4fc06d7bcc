"""torchvision's CIFAR-10 download path, exercised offline against a server on loopback."""

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

from edgecls.errors import EdgeclsError
from edgecls.trainer.data import load_data

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def batch_bytes(seed: int, n: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         "labels": rng.integers(0, 10, n).tolist()})


@pytest.fixture()
def fake_cifar(tmp_path, monkeypatch):
    """A small archive in CIFAR-10's own format, served over HTTP on 127.0.0.1."""
    files = {f"data_batch_{i}": batch_bytes(i, 8) for i in range(1, 6)}
    files["test_batch"] = batch_bytes(0, 6)
    files["batches.meta"] = pickle.dumps({"label_names": LABELS})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(buf.getvalue()))
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", [[name, md5(files[name])] for name in batches])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(files["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5(files["batches.meta"])})
    yield server
    server.shutdown()


def test_downloads_once_then_works_offline(fake_cifar, tmp_path):
    data_dir = tmp_path / "cifar"
    splits = load_data("cifar10", 32, data_dir=data_dir)
    assert (data_dir / "cifar-10-python.tar.gz").is_file()
    assert splits.train.images.shape[1:] == (32, 32, 3) and splits.test.images.shape == (6, 32, 32, 3)
    assert len(splits.train) + len(splits.val) == 40 and set(splits.val.labels) <= set(splits.train.labels)
    assert splits.classes == tuple(LABELS)
    fake_cifar.shutdown()
    fake_cifar.server_close()
    again = load_data("cifar10", 32, data_dir=data_dir)
    assert np.array_equal(again.train.images, splits.train.images)


def test_offline_and_absent_is_one_clear_error(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # discard port: refused
    with pytest.raises(EdgeclsError) as err:
        load_data("cifar10", 32, data_dir=tmp_path / "empty")
    message = str(err.value)
    assert "could not be downloaded" in message and "--data PATH" in message and str(tmp_path / "empty") in message
