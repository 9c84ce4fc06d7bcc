"""Every setting of `edgecls serve` in one place, with its default (the CLI and `create_app` share it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecls.errors import UsageError


@dataclass(frozen=True)
class ServeConfig:
    model: Path | None = None          # export folder or model file; None = the shipped reference
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None         # engine threads; None = `engine_threads`
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32                # images per engine call
    max_wait_ms: float = 2.0           # longest a batch waits for requests already on their way
    max_queue: int = 256               # images admitted but not yet answered; past it, 503
    max_body_mb: float = 20.0
    body_timeout_s: float = 30.0       # a request body must arrive within this
    header_timeout_s: float = 10.0     # request headers must arrive within this (from connect or first byte)
    keep_alive_s: float = 5.0          # idle keep-alive connections are closed after this
    decode_threads: int | None = None  # image decoding pool; None = the cores the engine leaves (see decode_pool)
    api_key: str | None = None         # when set, every route but health needs `Authorization: Bearer <key>`
    allow_failed_proof: bool = False   # serve (and reload to) a file that fails its golden check on this CPU

    @property
    def engine_threads(self) -> int:
        """By default the thread budget less one core, at least one: the event loop and the decoders need a
        core. Even with the engine's threads asleep between batches (it is opened for streaming), a second engine
        thread on 2 cores served fewer requests (benchmarks/results/stream-pipeline-records-2026-12-05.md,
        `serve` at 32 clients)."""
        from edgecls.host import thread_budget

        return self.threads or thread_budget(reserve=1)

    @property
    def decode_pool(self) -> int:
        """Decode threads: by default the cores of the budget the engine leaves, at least one."""
        from edgecls.host import thread_budget

        return self.decode_threads or max(1, thread_budget() - self.engine_threads)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def check(self) -> "ServeConfig":
        """One-line usage errors for settings that cannot work."""
        positive = {"--max-batch": self.max_batch, "--max-queue": self.max_queue, "--max-body-mb": self.max_body_mb,
                    "--body-timeout-s": self.body_timeout_s, "--header-timeout-s": self.header_timeout_s,
                    "--keep-alive-s": self.keep_alive_s}
        for flag, value in positive.items():
            if value <= 0:
                raise UsageError(f"{flag} must be positive, got {value}")
        if self.max_wait_ms < 0:
            raise UsageError(f"--max-wait-ms must be zero or more, got {self.max_wait_ms}")
        if self.api_key is not None and not self.api_key:
            raise UsageError("the API key is empty")
        return self
