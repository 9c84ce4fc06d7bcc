"""Load test of `edgecls serve` on loopback, side by side with the in-process runtime, in one run.

    python benchmarks/serve_load.py [--model DIR] [--duration 30] [--soak 60] [--server-arg=--threads=1 ...]

The server is a separate `python -m edgecls serve` process on 127.0.0.1; the load comes from this
process (async aiohttp) or, for the throughput phases, from `wrk` when it is installed (apt-get install
wrk): on a 2-core box the generator shares the server's cores, and aiohttp answered slower and took
more of them than wrk's one C thread. Every phase is bounded in time and count and talks only to that server:

1. in-process `Classifier.predict` throughput and single-image latency, same backend, same 32x32 PNGs;
2. start-to-ready time (median of 3 starts) and idle server RSS;
3. concurrency 1: median added latency of a request over in-process predict;
4. 32 concurrent clients for --duration s: throughput vs in-process (the mean of phase 1 and of the
   same measurement repeated right after this phase), p50/p99 latency, 5xx count;
5. a --soak s run at concurrency 64 with 10% bad requests: zero 5xx, every good answer equal to the
   in-process label, RSS after the soak vs after warm-up;
6. the HTTP side's own ceiling: phase 4 against the same server with its engine replaced by a constant.

Prints a JSON report and a Markdown table with the targets of tracker issue 15.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgecls.runtime import Classifier  # noqa: E402
from edgecls.shipped import reference_bundle  # noqa: E402

CIFAR = REPO.parent / "shared" / "datasets" / "cifar10" / "test"
WRK_SCRIPT = Path(__file__).with_name("serve_load_wrk.lua")
# `edgecls serve` with the engine's answer replaced by a constant: what HTTP, decoding and batching cost alone.
CONSTANT_ENGINE_SERVER = """
import sys
from pathlib import Path
import numpy as np
import edgecls.serve.server as server
from edgecls.serve.config import ServeConfig

real_create_app = server.create_app

def constant_engine_app(config):
    app = real_create_app(config)
    classifier = app.state.slot.current.classifier
    classifier.logits_from_input = lambda x: np.zeros((len(x), len(classifier.classes)), np.float32)
    return app

server.create_app = constant_engine_app
server.serve(ServeConfig(model=Path(sys.argv[1]), port=int(sys.argv[2])))
"""
TARGETS = {"throughput_ratio_c32": 0.85, "p99_ms_c32": 50.0, "added_ms_c1": 2.0, "soak_rss_growth": 0.10,
           "idle_rss_mb": 200.0, "start_to_ready_s": 1.5}


def png_images(count: int) -> list[bytes]:
    """Real CIFAR-10 test images, re-encoded as 32x32 PNGs, classes interleaved."""
    classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
    files = [sorted(c.iterdir()) for c in classes]
    out = []
    for n in range(count):
        buf = io.BytesIO()
        Image.open(files[n % len(files)][n // len(files)]).convert("RGB").save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def in_process(model: Path, images: list[bytes], backend: str, threads: int | None, seconds: float) -> dict:
    clf = Classifier.load(model, backend=backend, threads=threads)
    labels = [p.label for p in clf.predict(images, batch_size=64)]
    done, start, share = 0, time.perf_counter(), CpuShare(None)
    while time.perf_counter() - start < seconds:
        clf.predict(images, batch_size=64)
        done += len(images)
    throughput = done / (time.perf_counter() - start)
    busy = share.stop()
    single = []
    for data in images[:500]:
        t0 = time.perf_counter()
        clf.predict(data)
        single.append(time.perf_counter() - t0)
    return {"labels": labels, "throughput_ips": throughput, "single_ms_p50": 1000 * statistics.median(single),
            "backend": backend,
            "other_processes_cores": busy["other_processes_cores"],
            "format": clf.choice.format, "engine": clf.choice.engine, "threads": clf.engine.threads}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, server_args: list[str], constant_engine: bool = False
                 ) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    cmd = ([sys.executable, "-c", CONSTANT_ENGINE_SERVER, str(model), str(port)] if constant_engine else
           [sys.executable, "-m", "edgecls", "serve", str(model), "--port", str(port), *server_args])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - t0 < 60:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)
    proc.kill()
    raise SystemExit("server not ready within 60 s")


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bad_request(rng: random.Random, good: bytes) -> tuple[str, bytes, dict]:
    """(path, body, headers) of a request the server must refuse with a 4xx."""
    kind = rng.choice(("text", "truncated", "empty", "media", "v2-json"))
    if kind == "text":
        return "/v1/classify", b"definitely not an image", {"Content-Type": "image/png"}
    if kind == "truncated":
        return "/v1/classify", good[: len(good) // 2], {"Content-Type": "image/png"}
    if kind == "empty":
        return "/v1/classify", b"", {"Content-Type": "image/png"}
    if kind == "media":
        return "/v1/classify", good, {"Content-Type": "text/plain"}
    return "/v2/models/resnet20/infer", b'{"inputs": [', {"Content-Type": "application/json"}


async def load(url: str, images: list[bytes], labels: list[str], concurrency: int, seconds: float,
               bad_share: float = 0.0, seed: int = 0, max_requests: int = 2_000_000) -> dict:
    """``concurrency`` clients posting images back to back for ``seconds``; latencies of the good requests."""
    rng = random.Random(seed)
    latencies, statuses, wrong = [], {}, 0
    deadline = time.perf_counter() + seconds
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def client(worker: int) -> None:
            nonlocal wrong, sent
            n = worker
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                n = (n + concurrency) % len(images)
                if bad_share and rng.random() < bad_share:
                    path, body, headers = bad_request(rng, images[n])
                    async with session.post(path, data=body, headers=headers) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                    continue
                t0 = time.perf_counter()
                async with session.post("/v1/classify", data=images[n], headers={"Content-Type": "image/png"}) as r:
                    body = await r.json() if r.status == 200 else await r.read()
                latencies.append(time.perf_counter() - t0)
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200 and body["results"][0]["label"] != labels[n]:
                    wrong += 1
        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    good = sum(v for k, v in statuses.items() if k == 200)
    return {"generator": "aiohttp", "concurrency": concurrency, "seconds": elapsed,
            "requests": sum(statuses.values()), "ok": good, "throughput_rps": good / elapsed,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "5xx": sum(v for k, v in statuses.items() if k >= 500), "wrong_labels": wrong}


def wrk_load(url: str, images: list[bytes], concurrency: int, seconds: float) -> dict | None:
    """``concurrency`` connections posting images back to back for ``seconds``, driven by wrk (one C
    thread); None where wrk is not installed. Labels are not checked here: the soak checks every answer."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        for n, data in enumerate(images):
            Path(folder, f"{n:05d}.png").write_bytes(data)
        out = subprocess.run([wrk, "-t1", f"-c{concurrency}", f"-d{round(seconds)}s", "--timeout", "10s",
                              "-s", str(WRK_SCRIPT), url, "--", folder, str(len(images))],
                             capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("EDGECLS-WRK "))
    requests, ok, c4xx, c5xx, other, socket_errors = (int(v) for v in line.split()[1:7])
    elapsed, p50, p99, _mean = (float(v) for v in line.split()[7:])
    return {"generator": "wrk", "concurrency": concurrency, "seconds": elapsed, "requests": requests, "ok": ok,
            "throughput_rps": ok / elapsed, "p50_ms": p50, "p99_ms": p99,
            "status_counts": {"2xx": ok, "4xx": c4xx, "5xx": c5xx, "other": other, "socket errors": socket_errors},
            "5xx": c5xx, "wrong_labels": None}


def throughput_load(url: str, images: list[bytes], labels: list[str], concurrency: int, seconds: float) -> dict:
    """wrk where installed (the cheapest generator, so the numbers are the server's), else aiohttp."""
    return wrk_load(url, images, concurrency, seconds) or asyncio.run(load(url, images, labels, concurrency, seconds))


class CpuShare:
    """How busy the box was during a phase, and how much of that was neither this process nor the server."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        tick = os.sysconf("SC_CLK_TCK")
        server = 0.0
        if self.server_pid is not None:
            stat = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
            server = (int(stat[11]) + int(stat[12])) / tick
        own = os.times()  # children that ended count too: wrk, once subprocess.run has waited for it
        client = own.user + own.system + own.children_user + own.children_system
        return time.perf_counter(), busy / tick, server, client

    def stop(self) -> dict:
        end = self._sample()
        wall, busy, server, client = (b - a for a, b in zip(self.start, end))
        return {"server_cores": server / wall, "load_generator_cores": client / wall,
                "other_processes_cores": max(0.0, busy - server - client) / wall}


def batch_stats(url: str) -> dict:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        for name in ("edgecls_batch_size_sum", "edgecls_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values


def mean_batch(before: dict, after: dict) -> float:
    calls = after["edgecls_batch_size_count"] - before["edgecls_batch_size_count"]
    return (after["edgecls_batch_size_sum"] - before["edgecls_batch_size_sum"]) / max(calls, 1)


def cpu_description() -> dict:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = info.get("Flags", "").split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return {"model": info.get("Model name", "").strip(), "cpus": os.cpu_count(),
            "flags": [f for f in wanted if f in flags], "python": platform.python_version()}


def run(args) -> dict:
    images = png_images(args.images)
    backend = _flag(args.server_arg, "--backend", "auto")
    starts = []
    for _ in range(3):
        proc, url, ready_s = start_server(args.model, args.server_arg)
        starts.append(ready_s)
        idle_rss = rss_mb(proc.pid)
        if len(starts) < 3:
            stop_server(proc)
    served = json.load(urllib.request.urlopen(f"{url}/v1/model", timeout=10))
    report = {"cpu": cpu_description(), "server_args": args.server_arg, "served": {
        k: served[k] for k in ("format", "backend", "device", "threads")},
              "start_to_ready_s": statistics.median(starts), "idle_rss_mb": idle_rss}
    try:
        local = in_process(args.model, images, backend, None, args.local_seconds)  # the runtime's defaults
        labels = local.pop("labels")
        same = in_process(args.model, images, backend, served["threads"], args.local_seconds)
        report["in_process"] = local
        report["in_process_server_threads"] = {k: v for k, v in same.items() if k != "labels"}
        report.update(load_phases(url, proc.pid, images, labels, local, args))
    finally:
        report["exit_code"] = stop_server(proc)
    report["http_ceiling"] = http_ceiling(args.model, images, labels, args.duration, local)
    return report


def load_phases(url: str, pid: int, images: list[bytes], labels: list[str], local: dict, args) -> dict:
    """Concurrency 1, concurrency 32, then warm-up and soak at concurrency 64 with bad requests mixed in."""
    share = CpuShare(pid)
    c1 = asyncio.run(load(url, images, labels, 1, args.c1_seconds, max_requests=args.c1_requests))
    c1 = {**c1, "added_ms_p50": c1["p50_ms"] - local["single_ms_p50"], "cpu": share.stop()}
    before, share = batch_stats(url), CpuShare(pid)
    c32 = throughput_load(url, images, labels, 32, args.duration)
    c32 = {**c32, "cpu": share.stop(), "mean_batch": mean_batch(before, batch_stats(url))}
    # The box's speed drifts by tens of percent within minutes: in-process is measured again right after
    # phase 4, and the ratio is taken against the mean of the two measurements that bracket it.
    after = in_process(args.model, images, local["backend"], None, args.local_seconds)
    local["throughput_ips_after_c32"] = after["throughput_ips"]
    local["throughput_ips_bracketing_c32"] = (local["throughput_ips"] + after["throughput_ips"]) / 2
    c32["vs_in_process"] = c32["throughput_rps"] / local["throughput_ips_bracketing_c32"]
    asyncio.run(load(url, images, labels, 64, args.warmup, bad_share=0.1, seed=1))
    warm_rss, share = rss_mb(pid), CpuShare(pid)
    soak = asyncio.run(load(url, images, labels, 64, args.soak, bad_share=0.1, seed=2))
    return {"c1": c1, "c32": c32, "soak": {**soak, "cpu": share.stop()}, "rss_after_warmup_mb": warm_rss,
            "rss_after_soak_mb": rss_mb(pid)}


def http_ceiling(model: Path, images: list[bytes], labels: list[str], seconds: float, local: dict) -> dict:
    """Phase 4 against the server with a constant for an engine: the most the HTTP side can carry here."""
    proc, url, _ = start_server(model, [], constant_engine=True)
    try:
        throughput_load(url, images, labels, 32, 2)  # warm-up
        share = CpuShare(proc.pid)
        result = throughput_load(url, images, labels, 32, seconds)
        result["cpu"] = share.stop()
    finally:
        stop_server(proc)
    return {**result, "vs_in_process": result["throughput_rps"] / local["throughput_ips_bracketing_c32"]}


def _flag(server_args: list[str], name: str, default):
    for arg in server_args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def verdicts(r: dict) -> list[tuple[str, str, str, bool]]:
    growth = r["rss_after_soak_mb"] / r["rss_after_warmup_mb"] - 1
    soak = r["soak"]
    ceiling = r["http_ceiling"]
    return [
        (f"throughput at c=32 ({r['c32']['generator']}) vs in-process", f"{r['c32']['throughput_rps']:.0f} req/s vs "
         f"{r['in_process']['throughput_ips_bracketing_c32']:.0f} img/s = {r['c32']['vs_in_process']:.0%} (in-process "
         f"{r['in_process']['throughput_ips']:.0f} before, {r['in_process']['throughput_ips_after_c32']:.0f} after; "
         f"mean batch "
         f"{r['c32']['mean_batch']:.1f}; in-process with the server's {r['served']['threads']} engine thread(s): "
         f"{r['in_process_server_threads']['throughput_ips']:.0f} img/s)", f"≥ {TARGETS['throughput_ratio_c32']:.0%}",
         r["c32"]["vs_in_process"] >= TARGETS["throughput_ratio_c32"]),
        ("… the HTTP side alone (engine replaced by a constant)", f"{ceiling['throughput_rps']:.0f} req/s = "
         f"{ceiling['vs_in_process']:.0%} of in-process (server {ceiling['cpu']['server_cores']:.2f} cores, "
         f"generator {ceiling['cpu']['load_generator_cores']:.2f})", "", True),
        ("p50 / p99 latency at c=32", f"{r['c32']['p50_ms']:.1f} / {r['c32']['p99_ms']:.1f} ms", "p99 ≤ 50 ms",
         r["c32"]["p99_ms"] <= TARGETS["p99_ms_c32"]),
        ("5xx at c=32", str(r["c32"]["5xx"]), "0", r["c32"]["5xx"] == 0),
        ("added median latency at c=1", f"{r['c1']['added_ms_p50']:.2f} ms ({r['c1']['p50_ms']:.2f} vs "
         f"{r['in_process']['single_ms_p50']:.2f} ms in-process)", "≤ 2 ms",
         r["c1"]["added_ms_p50"] <= TARGETS["added_ms_c1"]),
        ("soak c=64, 10% bad: 5xx / wrong labels", f"{soak['5xx']} / {soak['wrong_labels']} of {soak['requests']} "
         f"requests ({soak['throughput_rps']:.0f} good req/s)", "0 / 0",
         soak["5xx"] == 0 and soak["wrong_labels"] == 0),
        ("RSS after soak vs after warm-up", f"{r['rss_after_soak_mb']:.1f} vs {r['rss_after_warmup_mb']:.1f} MB "
         f"({growth:+.1%})", "within 10%", abs(growth) <= TARGETS["soak_rss_growth"]),
        ("idle server RSS", f"{r['idle_rss_mb']:.1f} MB", "≤ 200 MB", r["idle_rss_mb"] <= TARGETS["idle_rss_mb"]),
        ("start to ready (median of 3)", f"{r['start_to_ready_s']:.2f} s", "≤ 1.5 s",
         r["start_to_ready_s"] <= TARGETS["start_to_ready_s"]),
    ]


def markdown(r: dict) -> str:
    rows = ["| what | measured | target | |", "|---|---|---|---|"]
    rows += [f"| {w} | {m} | {t} | {('holds' if ok else '**misses**') if t else ''} |" for w, m, t, ok in verdicts(r)]
    other = {name: r[name]["cpu"]["other_processes_cores"] for name in ("c1", "c32", "soak")}
    other["in-process"] = max(r["in_process"]["other_processes_cores"],
                              r["in_process_server_threads"]["other_processes_cores"])
    rows.append("\nCPU: " + r["cpu"]["model"] + ", " + " ".join(r["cpu"]["flags"]) + "; other processes used " +
                ", ".join(f"{v:.2f} cores during {k}" for k, v in other.items()))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=reference_bundle())
    parser.add_argument("--images", type=int, default=1000, help="distinct 32x32 PNGs cycled through")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at concurrency 32")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds at concurrency 64 with 10%% bad requests")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of soak-like load before the soak")
    parser.add_argument("--c1-seconds", type=float, default=10.0)
    parser.add_argument("--c1-requests", type=int, default=2000)
    parser.add_argument("--local-seconds", type=float, default=5.0, help="seconds of in-process predict")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="passed to `edgecls serve`, as --server-arg=--threads=1 (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print(markdown(report))


if __name__ == "__main__":
    main()
