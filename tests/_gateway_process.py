"""``dispatchline serve`` as a real subprocess on a free loopback port, for gateway tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests._fake_openai import free_port


def dispatchline() -> list[str]:
    """The installed console script (beside this interpreter), else ``python -m gateway``."""
    script = Path(sys.executable).parent / "dispatchline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]


class GatewayProcess:
    """``with GatewayProcess(config_path) as gw: gw.url`` -- ready when entered."""

    def __init__(self, config: Path | None, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self._args = [*(["--config", str(config)] if config else []), *args]
        self._env = {**os.environ, **(env or {})}
        self._log = (config.parent if config else Path.cwd()) / f"gateway-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self._log.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> GatewayProcess:
        command = [*dispatchline(), "serve", "--port", str(self.port), *self._args]
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dispatchline serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health/readiness", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dispatchline serve was not ready in 30 s:\n{self.log()}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
