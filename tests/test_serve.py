"""`edgecls serve`: real server processes on 127.0.0.1, real httpx and tritonclient clients, real CIFAR-10 images.

Every bad-input and security path is exercised against a running server, which must keep serving
afterwards. Nothing here asserts a latency: waits are polls with generous limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from edgecls.bundle import read_manifest
from edgecls.digest import file_sha256
from edgecls.golden_file import read_golden, write_golden
from edgecls.runtime import Classifier

from .conftest import CLASSES, REPO, assert_one_line_error, run_cli

REFERENCE = REPO / "artifacts" / "reference" / "exports"
READY_WAIT_S = 120  # generous for a loaded CI box; nothing is measured with it
KEY = "s3cret-test-key"


# --- helpers: server processes, raw sockets, metrics ------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(*args: str, env: dict | None = None):
    """`python -m edgecls serve ARGS --port P` until ready; yields (url, process, log path).

    On exit the server gets SIGTERM and must exit 0 without a traceback.
    """
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="edgecls-serve-", suffix=".log")[1])
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "serve", *args, "--port", str(port)], cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    log.unlink()
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text


def wait_ready(url: str, proc: subprocess.Popen, log: Path, route: str = "/v2/health/ready") -> None:
    """Until ``route`` answers 200 (``/v2/health/live``: up, ready or not)."""
    deadline = time.monotonic() + READY_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}{route}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not answer 200 on {route}")


def wait_for(predicate, what: str, limit_s: float = 60) -> None:
    """Poll until ``predicate()`` holds: a wait, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(url: str, name: str, headers: dict | None = None, **labels: str) -> float:
    """Sum of a Prometheus sample over the label sets that match ``labels``."""
    text = httpx.get(f"{url}/metrics", headers=headers or {}, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def raw_socket(url: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=60)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_json_error(response, status: int, *fragments: str) -> None:
    """A one-line JSON body `{"error": "..."}` naming the problem."""
    assert response.status_code == status, response.text
    assert "\n" not in response.text.strip()
    body = response.json()
    assert set(body) == {"error"} and body["error"], body
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


def images_of(cifar: Path, per_class: int, classes=CLASSES) -> list[tuple[str, bytes]]:
    return [(f"{c}/{f.name}", f.read_bytes()) for c in classes
            for f in sorted((cifar / "test" / c).iterdir())[:per_class]]


def png_bomb(side: int) -> bytes:
    """A tiny PNG whose header claims side x side RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + \
        chunk(b"IEND", b"")


def classify(url: str, data: bytes, content_type: str = "image/jpeg", headers: dict | None = None,
             **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/classify", content=data, headers={"Content-Type": content_type, **(headers or {})},
                      timeout=60, **kw)


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Copies of the reference bundle: two good ones to swap between, one tampered, one failing its golden set."""
    root = tmp_path_factory.mktemp("bundles")
    out = {name: Path(shutil.copytree(REFERENCE, root / name)) for name in ("a", "b", "tampered", "golden-fail")}
    model = out["tampered"] / "resnet20-int8.onnx"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    _break_golden(out["golden-fail"])
    return out


def _break_golden(folder: Path) -> None:
    """Golden reference logits rolled by one class: every file now disagrees, but every sha256 matches."""
    manifest = read_manifest(folder)
    golden = read_golden(folder, manifest)
    golden.logits = {k: np.roll(v, 1, axis=1) for k, v in golden.logits.items()}
    path = folder / manifest["golden"]["path"]
    write_golden(path, golden)
    manifest["golden"]["sha256"] = file_sha256(path)
    manifest["golden"]["size"] = path.stat().st_size
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="module")
def server(bundles):
    """The main server: a copy of the reference bundle, small body limit, short body, header and keep-alive
    timeouts."""
    with running_server(str(bundles["a"]), "--max-body-mb", "1", "--body-timeout-s", "1", "--header-timeout-s", "1",
                        "--keep-alive-s", "1", "--max-batch", "16") as (url, proc, _):
        yield url, proc


@pytest.fixture(scope="module")
def url(server) -> str:
    return server[0]


@pytest.fixture(scope="module")
def reference() -> Classifier:
    return Classifier.load(REFERENCE)


@pytest.fixture(scope="module")
def cat(cifar_dir) -> bytes:
    return sorted((cifar_dir / "test" / "cat").iterdir())[0].read_bytes()


# --- /v1/classify ------------------------------------------------------------------------------------

def test_classify_one_image_matches_the_runtime(url, cat, reference):
    response = classify(url, cat, params={"top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = reference.predict(cat, top_k=3)
    row = body["results"][0]
    assert body["model"] == "resnet20" and len(body["results"]) == 1
    assert set(row) == {"path", "label", "index", "prob", "top_k"}  # the keys of `edgecls infer --json`
    assert (row["label"], row["index"]) == (expected.label, expected.index)
    assert [label for label, _ in row["top_k"]] == [label for label, _ in expected.top_k]
    np.testing.assert_allclose([p for _, p in row["top_k"]], [p for _, p in expected.top_k], atol=1e-5)


def test_infer_json_rows_are_the_same_objects(url, cifar_dir):
    image = sorted((cifar_dir / "test" / "ship").iterdir())[0]
    cli = run_cli("infer", str(image), "--json", "--top-k", "4", "--model", str(REFERENCE))
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(cli.stdout)
    row = classify(url, image.read_bytes(), params={"top_k": 4}).json()["results"][0]
    assert {k: v for k, v in row.items() if k != "path"} == {k: v for k, v in from_cli.items() if k != "path"}


def test_multipart_several_images_with_one_bad(url, cifar_dir, reference):
    good = images_of(cifar_dir, 1, ("dog", "truck"))
    files = [("files", (name, data, "image/jpeg")) for name, data in good]
    files.insert(1, ("files", ("notes.txt", b"not an image at all", "text/plain")))
    response = httpx.post(f"{url}/v1/classify", files=files, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["path"] for r in rows] == [good[0][0], "notes.txt", good[1][0]]  # the names the client gave
    assert rows[1] == {"path": "notes.txt", "error": "not an image Pillow can read"}
    assert [rows[0]["label"], rows[2]["label"]] == [p.label for p in reference.predict([d for _, d in good])]


def test_large_uploads_decode_in_the_pool_and_answer_alike(url, cat, reference):
    """Small images decode on the event loop, larger ones in the decode pool: both answer as the runtime."""
    from edgecls.serve.decode import decodes_inline, open_upload

    buf = io.BytesIO()
    Image.open(io.BytesIO(cat)).resize((400, 300), Image.BICUBIC).save(buf, "PNG")
    large = buf.getvalue()
    assert decodes_inline(open_upload(cat)) and not decodes_inline(open_upload(large))
    for data, content_type in ((cat, "image/jpeg"), (large, "image/png")):
        row = classify(url, data, content_type, params={"top_k": 10}).json()["results"][0]
        want = reference.predict(data, top_k=10)
        assert row["label"] == want.label
        np.testing.assert_allclose([p for _, p in sorted(row["top_k"])], [p for _, p in sorted(want.top_k)],
                                   atol=1e-5)
    files = [("files", ("large.png", large, "image/png")), ("files", ("cut.png", large[:2000], "image/png")),
             ("files", ("cat.jpg", cat, "image/jpeg"))]
    rows = httpx.post(f"{url}/v1/classify", files=files, timeout=60).json()["results"]
    assert [r.get("label") for r in rows] == [reference.predict(large).label, None, reference.predict(cat).label]
    assert "runcated" in rows[1]["error"]
    assert_json_error(classify(url, large[:2000], "image/png"), 422, "runcated")


def test_concurrent_requests_are_batched_and_equal_to_predict(url, cifar_dir, reference):
    images = images_of(cifar_dir, 8)  # 80 real test images
    before_sum, before_count = metric(url, "edgecls_batch_size_sum"), metric(url, "edgecls_batch_size_count")

    async def fire():
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            gate = asyncio.Semaphore(32)

            async def one(data):
                async with gate:
                    r = await client.post("/v1/classify", content=data, headers={"Content-Type": "image/jpeg"},
                                          params={"top_k": 10})
                    return r.status_code, r.json()
            return await asyncio.gather(*(one(data) for _, data in images))

    answers = asyncio.run(fire())
    expected = reference.predict([data for _, data in images], top_k=10)
    for (status, body), want in zip(answers, expected):
        assert status == 200, body
        row = body["results"][0]
        assert row["label"] == want.label
        np.testing.assert_allclose([p for _, p in sorted(row["top_k"])], [p for _, p in sorted(want.top_k)],
                                   atol=1e-5)
    images_run = metric(url, "edgecls_batch_size_sum") - before_sum
    engine_calls = metric(url, "edgecls_batch_size_count") - before_count
    assert images_run == len(images)
    assert images_run / engine_calls > 1, f"{engine_calls} engine calls for {images_run} images: no batching"


@pytest.mark.parametrize("case, content_type, status, fragment", [
    ("not-an-image", "image/png", 422, "not an image"),
    ("truncated", "image/jpeg", 422, "runcated"),
    ("empty", "image/jpeg", 400, "zero bytes"),
    ("bomb", "image/png", 422, "decompression bomb"),
    ("huge-bomb", "image/png", 422, "decompression bomb"),
    ("text", "text/plain", 415, "Content-Type text/plain"),
])
def test_bad_uploads_get_one_line_errors_and_the_server_keeps_serving(url, cat, case, content_type, status,
                                                                      fragment):
    data = {"not-an-image": b"this is not an image", "truncated": cat[: len(cat) // 2], "empty": b"",
            "bomb": png_bomb(12_000), "huge-bomb": png_bomb(20_000), "text": b"hello"}[case]
    before = metric(url, "edgecls_errors_total")
    assert_json_error(classify(url, data, content_type), status, fragment)
    assert metric(url, "edgecls_errors_total") == before + 1
    assert classify(url, cat).json()["results"][0]["label"] == "cat"


def test_bad_top_k_is_400(url, cat):
    assert_json_error(classify(url, cat, params={"top_k": "many"}), 400, "top_k")
    assert_json_error(classify(url, cat, params={"top_k": "0"}), 400, "top_k")


def test_unknown_route_and_method_are_json(url):
    assert_json_error(httpx.get(f"{url}/nope"), 404, "Not Found")
    assert_json_error(httpx.get(f"{url}/v1/classify"), 405, "Method Not Allowed")


# --- body limits and slow clients --------------------------------------------------------------------

def test_declared_oversized_body_is_413_before_it_is_sent(url):
    with raw_socket(url) as sock:
        sock.sendall(request_head("POST", "/v1/classify", {"Content-Type": "image/jpeg",
                                                          "Content-Length": str(50 * 1024 * 1024)}))
        sock.sendall(b"\xff\xd8" + b"\0" * 1000)  # 1 KB of the promised 50 MB, then nothing
        status, headers, body = read_response(sock)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body) == {"error": "request body over the 1 MB limit"}


def test_streamed_oversized_body_is_413_when_the_count_passes_the_limit(url):
    chunk = b"\0" * 65536
    with raw_socket(url) as sock:
        sock.sendall(request_head("POST", "/v1/classify", {"Content-Type": "image/jpeg",
                                                          "Transfer-Encoding": "chunked"}))
        for _ in range(17):  # 1.06 MB in chunks, no Content-Length
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, _, body = read_response(sock)
    assert status == 413 and "1 MB" in json.loads(body)["error"]


def test_a_body_that_stalls_is_408(url):
    with raw_socket(url) as sock:
        sock.sendall(request_head("POST", "/v1/classify", {"Content-Type": "image/jpeg", "Content-Length": "5000"}))
        sock.sendall(b"\xff\xd8\xff")  # then silence: the server's 1 s body timeout answers
        status, _, body = read_response(sock)
    assert status == 408 and "not received within 1 s" in json.loads(body)["error"]


def test_idle_keep_alive_connections_are_closed(url):
    with raw_socket(url) as sock:
        sock.sendall(request_head("GET", "/v2/health/live", {}))
        status, _, _ = read_response(sock)
        assert status == 200
        assert sock.recv(1) == b""  # the server hangs up after --keep-alive-s of silence


# --- request headers: a deadline uvicorn lacks --------------------------------------------------------
# No upper bound on when the server closes, and the tests' own pauses sit far inside both deadlines, so a loaded
# 2-core CI box may stall either process for over a second without failing these tests.
HEADER_TIMEOUT_S = 2.0
KEEP_ALIVE_S = 4 * HEADER_TIMEOUT_S  # an idle pause of one header deadline stays far inside it
TRICKLE_EVERY_S = 0.3  # far inside the deadline: one restarted by each byte would never run out
TRICKLE = b"X-Slow: " + b"a" * int(READY_WAIT_S / TRICKLE_EVERY_S)  # outlasts any plausible stall


@pytest.fixture(scope="module")
def deadline_url(bundles):
    """A server with the header deadline and keep-alive above (the main server's 1 s of each leaves no room)."""
    with running_server(str(bundles["a"]), "--header-timeout-s", f"{HEADER_TIMEOUT_S:g}",
                        "--keep-alive-s", f"{KEEP_ALIVE_S:g}") as (url, _, _):
        yield url


def until_closed(sock: socket.socket, trickle: bytes = b"",
                 limit_s: float = READY_WAIT_S) -> tuple[bytes, float, int]:
    """What arrives until the server closes the connection, the monotonic time it did, and how many bytes of
    ``trickle`` were never sent; meanwhile one byte of ``trickle`` goes out every TRICKLE_EVERY_S until something
    arrives. ``limit_s`` only bounds a server that never closes."""
    sock.settimeout(TRICKLE_EVERY_S)
    received, deadline = b"", time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if trickle and not received:
                sock.sendall(trickle[:1])
                trickle = trickle[1:]
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):  # a byte sent after the close may draw a reset
            return received, time.monotonic(), len(trickle)
        if not chunk:
            return received, time.monotonic(), len(trickle)
        received += chunk
    raise AssertionError(f"the server kept the connection open: {received!r}")


def assert_header_deadline_cuts_a_trickle(url: str, timeout_s: float) -> None:
    """The deadline counts from the head's first byte: the server closes while bytes still trickle in, each well
    inside the deadline after the last (a deadline restarted per byte would wait for the trickle to end)."""
    start = time.monotonic()
    with raw_socket(url) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
        received, closed, unsent = until_closed(sock, trickle=TRICKLE)
    assert closed - start >= timeout_s * 0.9, closed - start
    assert unsent > 0, "the connection outlived the trickle"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower(), received
    assert json.loads(body) == {"error": f"request headers not received within {timeout_s:g} s"}


def assert_silent_connection_closed(url: str, timeout_s: float) -> None:
    start = time.monotonic()
    with raw_socket(url) as sock:
        received, closed, _ = until_closed(sock)
    assert closed - start >= timeout_s * 0.9, closed - start
    assert received == b""  # nothing was asked, so nothing is answered (a 408 could pass for a later answer)


def assert_keep_alive_outlives_header_deadline(url: str, timeout_s: float, keep_alive_s: float) -> None:
    """Requests on one connection over more than the deadline, each after an idle pause of a whole deadline and
    with its head split by a short pause: the deadline counts from a request's first byte, not from the connect or
    the previous response. Each pause stays far inside its limit: the idle one under keep-alive, the split one
    under the deadline; only a stall of four fifths of a deadline between the two sends of a head could fail this."""
    assert keep_alive_s >= 2 * timeout_s, "no room for an idle pause of a whole deadline"
    head = request_head("GET", "/v2/health/live", {})
    with raw_socket(url) as sock:
        for _ in range(2):
            sock.sendall(head)
            assert read_response(sock)[0] == 200
            time.sleep(timeout_s)  # idle: a deadline counted from the response (or the connect) runs out
            sock.sendall(head[:10])
            time.sleep(timeout_s / 5)  # 1.2 deadlines since the response, 0.2 since this head began
            sock.sendall(head[10:])
            assert read_response(sock)[0] == 200


def test_headers_trickled_slowly_get_408_and_close(deadline_url, cat):
    before = metric(deadline_url, "edgecls_errors_total", kind="header_timeout")
    assert_header_deadline_cuts_a_trickle(deadline_url, HEADER_TIMEOUT_S)
    assert metric(deadline_url, "edgecls_errors_total", kind="header_timeout") == before + 1
    assert classify(deadline_url, cat).json()["results"][0]["label"] == "cat"


def test_a_connection_that_sends_nothing_is_closed(deadline_url):
    before = metric(deadline_url, "edgecls_errors_total", kind="header_timeout")
    assert_silent_connection_closed(deadline_url, HEADER_TIMEOUT_S)
    assert metric(deadline_url, "edgecls_errors_total", kind="header_timeout") == before + 1  # closed by the deadline
    assert httpx.get(f"{deadline_url}/v2/health/live", timeout=10).status_code == 200


def test_header_deadline_spares_healthy_keep_alive(deadline_url):
    assert_keep_alive_outlives_header_deadline(deadline_url, HEADER_TIMEOUT_S, KEEP_ALIVE_S)


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_header_deadline_with_either_uvicorn_parser(parser):
    """The same deadline on a bare uvicorn server with each parser (httptools when installed, else h11)."""
    import uvicorn

    from edgecls.serve import protocol

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    base = protocol.H11ServeProtocol if parser == "h11" else protocol.HttpToolsServeProtocol
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning",
                            timeout_keep_alive=KEEP_ALIVE_S, http=protocol.serve_protocol(HEADER_TIMEOUT_S, base=base))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the uvicorn server")
        url = f"http://127.0.0.1:{config.port}"
        assert_header_deadline_cuts_a_trickle(url, HEADER_TIMEOUT_S)
        assert_silent_connection_closed(url, HEADER_TIMEOUT_S)
        assert_keep_alive_outlives_header_deadline(url, HEADER_TIMEOUT_S, KEEP_ALIVE_S)
    finally:
        server.should_exit = True
        thread.join(10)


# --- /v1/model, /metrics, the page -------------------------------------------------------------------

def test_model_info(url, bundles):
    info = httpx.get(f"{url}/v1/model").json()
    clf = Classifier.load(bundles["a"])
    assert info["spec"] == clf.spec.to_dict()
    assert info["name"] == clf.spec.model == httpx.get(f"{url}/v2/models/resnet20").json()["name"]
    assert (info["format"], info["precision"], info["backend"]) == (clf.choice.format, "int8", clf.choice.engine)
    assert info["device"] == clf.engine.device
    manifest = read_manifest(bundles["a"])
    for entry in manifest["files"] + [manifest["golden"]]:
        assert info["sha256"][entry["path"]] == entry["sha256"] == file_sha256(bundles["a"] / entry["path"])


def test_metrics_exposition(url, cat):
    classify(url, cat)
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for name in ("edgecls_requests_total", "edgecls_errors_total", "edgecls_request_seconds_bucket",
                 "edgecls_batch_size_bucket", "edgecls_queue_depth", "edgecls_requests_arriving"):
        assert f"\n{name}" in response.text, name
    assert metric(url, "edgecls_requests_total", route="/v1/classify", status="200") >= 1


def test_page_is_self_contained(url):
    response = httpx.get(f"{url}/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "/v1/classify" in response.text and 'type="file"' in response.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", response.text), "the page loads an external asset"
    assert "default-src 'self'" in response.headers["content-security-policy"]


# --- KServe v2 / Open Inference Protocol, through the real Triton client ----------------------------

@pytest.fixture(scope="module")
def triton(url):
    import tritonclient.http as triton_http

    return triton_http, triton_http.InferenceServerClient(url.removeprefix("http://"))


def test_triton_health_and_metadata(triton, reference):
    _, client = triton
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("resnet20")
    meta = client.get_model_metadata("resnet20")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary_in, binary_out", [(True, True), (False, False), (True, False)])
def test_triton_fp32_tensor_gives_the_runtime_logits(triton, reference, cifar_dir, binary_in, binary_out):
    triton_http, client = triton
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for _, d in images_of(cifar_dir, 1)])
    from edgecls.runtime.preprocess import normalize

    x = normalize(pixels, reference.spec)
    tensor = triton_http.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    out = triton_http.InferRequestedOutput("logits", binary_data=binary_out)
    result = client.infer("resnet20", [tensor], outputs=[out], request_id="r1")
    assert result.get_response()["id"] == "r1"
    np.testing.assert_allclose(result.as_numpy("logits"), reference.logits_from_input(x), atol=1e-4)


def test_triton_bytes_input_of_encoded_images(triton, reference, cifar_dir):
    triton_http, client = triton
    images = images_of(cifar_dir, 1, ("frog", "horse", "airplane"))
    tensor = triton_http.InferInput("input", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array([d for _, d in images], dtype=np.object_))
    logits = client.infer("resnet20", [tensor]).as_numpy("logits")
    assert [reference.classes[i] for i in logits.argmax(1)] == [p.label for p in reference.predict(
        [d for _, d in images])]


def test_triton_client_sees_400_for_a_wrong_shape_and_404_for_a_wrong_model(triton):
    triton_http, client = triton
    from tritonclient.utils import InferenceServerException

    tensor = triton_http.InferInput("input", [1, 3, 64, 64], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3, 64, 64\] does not match"):
        client.infer("resnet20", [tensor])
    with pytest.raises(InferenceServerException, match="unknown model 'resnet56'"):
        client.infer("resnet56", [tensor])


BINARY_HEADER = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                        "parameters": {"binary_data_size": 12288}}]}).encode()


@pytest.mark.parametrize("body, headers, fragment", [
    (b'{"inputs": [', {}, "malformed JSON"),
    (b'[1, 2]', {}, "JSON object"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP64",
                             "data": [0.0] * 3072}]}).encode(), {}, "datatype 'FP64'"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "INT8",
                             "data": [0] * 3072}]}).encode(), {}, "datatype 'INT8'"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 32, 32, 3], "datatype": "FP32",
                             "data": [0.0] * 3072}]}).encode(), {}, "shape [1, 32, 32, 3] does not match"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                             "data": [0.0] * 100}]}).encode(), {}, "needs 3072 values, got 100"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                             "data": ["a"] * 3072}]}).encode(), {}, "list of numbers"),
    (json.dumps({"inputs": [{"name": "pixels", "shape": [1], "datatype": "BYTES", "data": ["AA=="]}]}).encode(),
     {}, "unknown input 'pixels'"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["@@"]}]}).encode(),
     {}, "base64"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                             "data": ["aGVsbG8="]}]}).encode(), {}, "element 0: not an image"),
    (BINARY_HEADER + b"\0" * 100, {"Inference-Header-Content-Length": str(len(BINARY_HEADER))},
     "binary_data_size 12288 does not match the 100 bytes"),
    (json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}],
                 "outputs": [{"name": "probs"}]}).encode(), {}, "unknown output 'probs'"),
])
def test_v2_malformed_requests_are_400_naming_the_problem(url, body, headers, fragment):
    response = httpx.post(f"{url}/v2/models/resnet20/infer", content=body, headers=headers, timeout=60)
    assert_json_error(response, 400, fragment)


# --- hot swap -------------------------------------------------------------------------------------------

def test_reload_refuses_a_tampered_bundle_and_keeps_serving(url, bundles, cat):
    response = httpx.post(f"{url}/v1/reload", json={"model": str(bundles["tampered"])}, timeout=120)
    assert_json_error(response, 422, "reload refused", "still serving", "sha256")
    assert httpx.get(f"{url}/v1/model").json()["path"] == str(bundles["a"])
    assert classify(url, cat).json()["results"][0]["label"] == "cat"


def test_reload_refuses_a_bundle_failing_its_golden_vectors(url, bundles):
    response = httpx.post(f"{url}/v1/reload", json={"model": str(bundles["golden-fail"])}, timeout=120)
    assert_json_error(response, 422, "reload refused", "passes its golden check on this CPU", "agreement")
    assert httpx.get(f"{url}/v1/model").json()["path"] == str(bundles["a"])


@pytest.mark.parametrize("body, status, fragment", [
    (b"{nope", 400, "malformed JSON"), (b'{"path": "x"}', 400, '{"model": "PATH"}'),
    (b'{"model": "/does/not/exist"}', 422, "does not exist"),
])
def test_reload_bad_requests(url, body, status, fragment):
    assert_json_error(httpx.post(f"{url}/v1/reload", content=body, timeout=120), status, fragment)


def test_reload_under_load_loses_no_request(url, bundles, cifar_dir, reference):
    images = images_of(cifar_dir, 2)
    expected = {name: p.label for (name, _), p in zip(images, reference.predict([d for _, d in images]))}
    reloads_before = metric(url, "edgecls_reloads_total", result="ok")

    async def load_and_swap():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            stop = asyncio.Event()
            answers = []

            async def worker(offset):
                n = offset
                while not stop.is_set() or n < offset + len(images):
                    name, data = images[n % len(images)]
                    r = await client.post("/v1/classify", content=data, headers={"Content-Type": "image/jpeg"})
                    answers.append((name, r.status_code, r.json()))
                    n += 1

            async def swapper():
                paths = []
                for target in ("b", "a", "b", "a"):
                    r = await client.post("/v1/reload", json={"model": str(bundles[target])})
                    paths.append((r.status_code, r.json()["model"]["path"]))
                stop.set()
                return paths

            *_, paths = await asyncio.gather(*(worker(i * 5) for i in range(8)), swapper())
            return answers, paths

    answers, paths = asyncio.run(load_and_swap())
    assert paths == [(200, str(bundles[t])) for t in ("b", "a", "b", "a")]
    assert len(answers) >= 8 * len(images)
    for name, status, body in answers:
        assert status == 200, body
        assert body["results"][0]["label"] == expected[name], name
    assert metric(url, "edgecls_reloads_total", result="ok") == reloads_before + 4


def test_sighup_reloads_the_served_path(server, bundles):
    url, proc = server
    before = metric(url, "edgecls_reloads_total", result="ok")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric(url, "edgecls_reloads_total", result="ok") == before + 1, "the SIGHUP reload")
    assert httpx.get(f"{url}/v1/model").json()["verified"] == "golden (cached proof for this CPU)"


# --- security defaults, the queue bound, shutdown ----------------------------------------------------

@pytest.fixture(scope="module")
def strict(bundles):
    """API key from the environment and a queue of one image."""
    with running_server(str(bundles["a"]), "--api-key-env", "EDGECLS_TEST_KEY", "--max-queue", "1",
                        env={"EDGECLS_TEST_KEY": KEY}) as (url, _, _):
        yield url


AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("path, method", [("/v1/classify", "POST"), ("/v1/model", "GET"), ("/metrics", "GET"),
                                          ("/", "GET"), ("/v1/reload", "POST"), ("/v2/models/resnet20", "GET"),
                                          ("/v2/models/resnet20/infer", "POST")])
def test_api_key_guards_every_route_but_health(strict, path, method):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.request(method, f"{strict}{path}", headers=headers, timeout=60)
        assert_json_error(response, 401, "API key")
        assert response.headers["www-authenticate"] == "Bearer"


def test_api_key_accepted_and_health_open(strict, cat):
    assert httpx.get(f"{strict}/v2/health/live").status_code == 200
    assert httpx.get(f"{strict}/v2/health/ready").status_code == 200
    assert classify(strict, cat, headers=AUTH).json()["results"][0]["label"] == "cat"
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(strict.removeprefix("http://"))
    assert client.get_model_metadata("resnet20", headers=AUTH)["name"] == "resnet20"


def test_full_queue_is_503_with_retry_after(strict, cat):
    with raw_socket(strict) as held:  # one admitted request whose body is still arriving fills the queue
        held.sendall(request_head("POST", "/v1/classify", {**AUTH, "Content-Type": "image/jpeg",
                                                           "Content-Length": str(len(cat))}))
        held.sendall(cat[:10])
        wait_for(lambda: metric(strict, "edgecls_requests_arriving", AUTH) == 1, "the held request")
        refused = classify(strict, cat, headers=AUTH)
        assert_json_error(refused, 503, "busy")
        assert refused.headers["retry-after"] == "1"
        held.sendall(cat[10:])
        status, _, body = read_response(held)
    assert status == 200 and json.loads(body)["results"][0]["label"] == "cat"
    assert classify(strict, cat, headers=AUTH).status_code == 200


def test_binds_loopback_by_default():
    with running_server() as (url, _, _):
        port = int(url.rsplit(":", 1)[1])
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1 only


def test_sigterm_finishes_the_request_in_flight_then_exits_0(cat):
    with running_server() as (url, proc, _):
        with raw_socket(url) as sock:
            sock.sendall(request_head("POST", "/v1/classify", {"Content-Type": "image/jpeg",
                                                              "Content-Length": str(len(cat))}))
            sock.sendall(cat[:100])
            wait_for(lambda: metric(url, "edgecls_requests_arriving") == 1, "the request in flight")
            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: _refused(url), "the listening socket to close")
            sock.sendall(cat[100:])
            status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["results"][0]["label"] == "cat"
        assert proc.wait(timeout=60) == 0


def _refused(url: str) -> bool:
    try:
        raw_socket(url).close()
    except ConnectionRefusedError:
        return True
    return False


def test_cli_usage_errors_are_one_line(tmp_path):
    assert_one_line_error(run_cli("serve", "--api-key-env", "EDGECLS_UNSET_VARIABLE_FOR_TEST"), "EDGECLS_UNSET")
    assert_one_line_error(run_cli("serve", str(tmp_path / "missing")), "does not exist")
    assert_one_line_error(run_cli("serve", "--max-batch", "0"), "--max-batch")
    assert_one_line_error(run_cli("serve", "--header-timeout-s", "0"), "--header-timeout-s must be positive")


def test_create_app_in_process(cat):
    """`edgecls.serve.create_app` is the same app, usable in-process (here through httpx's ASGI transport)."""
    from edgecls.serve import create_app

    async def use():
        app = create_app(model=REFERENCE, max_batch=4)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://edgecls") as client:
                ready = await client.get("/v2/health/ready")
                answer = await client.post("/v1/classify", content=cat, headers={"Content-Type": "image/jpeg"})
        return ready.json(), answer.json()

    ready, answer = asyncio.run(use())
    assert ready == {"ready": True} and answer["results"][0]["label"] == "cat"


def test_writes_of_one_loop_turn_leave_as_one_send():
    """uvicorn writes a response's head and body separately; the served protocol joins them into one send."""
    from edgecls.serve.protocol import _JoinedWrites

    class Recorder:
        def __init__(self):
            self.sent, self.closed = [], False

        def write(self, data):
            self.sent.append(data)

        def close(self):
            self.closed = True

        def get_extra_info(self, name):
            return f"info:{name}"

    async def turns():
        real = Recorder()
        joined = _JoinedWrites(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.write(b"body")
        during = list(real.sent)
        await asyncio.sleep(0)
        after_turn = list(real.sent)
        joined.write(b"last")
        joined.close()
        return during, after_turn, real, joined.get_extra_info("peername")

    during, after_turn, real, info = asyncio.run(turns())
    assert during == [] and after_turn == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert real.sent[-1] == b"last" and real.closed  # close sends what waits first
    assert info == "info:peername"  # everything else is the real transport's
