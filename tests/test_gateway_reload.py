"""Reload (admin route and SIGHUP), graceful shutdown and bad configs, on a real process."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests._fake_openai import FakeOpenAI
from tests._gateway_process import GatewayProcess, dispatchline

MASTER = "sk-master-reload-000"
HI: Any = [{"role": "user", "content": "hi"}]


def _config(upstream: str, models: str, extra: str = "") -> str:
    return f"""
[server]
master_key = "{MASTER}"
graceful_timeout = 10
{extra}
[providers.openai]
api_base = "{upstream}"
api_key = "sk-upstream-reload"
models = [{models}]
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def config(tmp_path: Path, upstream: FakeOpenAI) -> Path:
    path = tmp_path / "dispatchline.toml"
    path.write_text(_config(upstream.base_url, '"first"'))
    return path


def _models(gateway: GatewayProcess) -> list[str]:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER, max_retries=0)
    return [m.id for m in client.models.list()]


class Slow(threading.Thread):
    """A request that takes ``ms`` upstream, run beside the test."""

    def __init__(self, gateway: GatewayProcess, ms: int) -> None:
        super().__init__(daemon=True)
        self.url = gateway.base_url
        self.ms = ms
        self.reply: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        client = openai.OpenAI(base_url=self.url, api_key=MASTER, max_retries=0)
        try:
            self.reply = client.chat.completions.create(model=f"openai/slow-{self.ms}", messages=HI)
        except BaseException as exc:
            self.error = exc


def _wait_for(upstream: FakeOpenAI, model: str) -> None:
    deadline = time.monotonic() + 10
    while not upstream.seen(model):
        assert time.monotonic() < deadline, f"{model} never reached the upstream"
        time.sleep(0.01)


def test_reload_swaps_the_pipeline_without_failing_requests_in_flight(
    config: Path, upstream: FakeOpenAI
) -> None:
    with GatewayProcess(config) as gateway:
        assert _models(gateway) == ["openai/first"]
        slow = Slow(gateway, 1200)
        slow.start()
        _wait_for(upstream, "slow-1200")
        config.write_text(_config(upstream.base_url, '"second"'))
        admin = {"authorization": f"Bearer {MASTER}"}
        reloaded = httpx.post(gateway.url + "/admin/reload", headers=admin)
        assert reloaded.status_code == 200, reloaded.text
        assert _models(gateway) == ["openai/second"]  # new requests: the new pipeline
        slow.join(10)
        assert slow.error is None and slow.reply.choices  # the old one finished its request

        config.write_text(_config(upstream.base_url, '"third"', "unknown_setting = 1"))
        refused = httpx.post(gateway.url + "/admin/reload", headers=admin)
        assert refused.status_code == 400
        assert "server.unknown_setting" in refused.json()["error"]["message"]
        assert _models(gateway) == ["openai/second"]  # the old config keeps serving

        config.write_text(_config(upstream.base_url, '"fourth"'))
        gateway.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _models(gateway) != ["openai/fourth"]:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)


def test_sigterm_lets_requests_in_flight_finish(config: Path, upstream: FakeOpenAI) -> None:
    gateway = GatewayProcess(config)
    with gateway:
        slow = Slow(gateway, 800)
        slow.start()
        _wait_for(upstream, "slow-800")
        gateway.signal(signal.SIGTERM)
        slow.join(10)
        assert slow.error is None and slow.reply.choices
        # uvicorn re-raises the signal once shut down, so the exit is "terminated by SIGTERM"
        assert gateway.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in gateway.log()  # the lifespan closed the pipeline


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dispatchline(), "serve", *args], capture_output=True, text=True, timeout=60
    )


def test_bad_config_files_are_refused_with_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 4000\n\n[middlewares]\ncache = { max_entires = 10 }\n")
    result = _serve("--config", str(path))
    assert result.returncode != 0
    assert f"{path}:5: middlewares.cache.max_entires: unknown key" in result.stderr
    assert "did you mean 'max_entries'?" in result.stderr

    path.write_text('[providers.openai]\ntimeout = "soon"\n')
    result = _serve("--config", str(path))
    assert result.returncode != 0
    assert f"{path}:2: providers.openai.timeout: expected a positive number" in result.stderr


def test_no_key_and_a_public_address_is_refused_unless_insecure(tmp_path: Path) -> None:
    result = _serve("--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 with no key configured" in result.stderr
