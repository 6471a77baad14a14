"""The ``dispatchline`` command, run as a command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._gateway_process import GatewayProcess, dispatchline

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dispatchline(), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway on the built-in mock provider, with no key (it binds to loopback)."""
    path = tmp_path_factory.mktemp("cli") / "mock.toml"
    path.write_text('[providers.mock]\nmodels = ["echo"]\n')
    with GatewayProcess(path) as process:
        yield process


def test_chat_against_the_mock_provider_streams_the_reply() -> None:
    result = run("chat", "-m", "mock/echo", "why", "is", "the", "sky", "blue?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: why is the sky blue?\n"


def test_chat_reads_the_prompt_from_stdin_and_prints_json() -> None:
    result = run("chat", "-m", "mock/echo", "--json", "-s", "be brief", stdin="from a pipe\n")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"] == "echo: from a pipe"


def test_chat_errors_exit_1_with_the_message() -> None:
    result = run("chat", "-m", "nosuch/model", "hi")
    assert result.returncode == 1
    assert "no provider 'nosuch'" in result.stderr


def test_chat_models_and_health_against_a_running_gateway(gateway: GatewayProcess) -> None:
    streamed = run("chat", "--url", gateway.url, "-m", "mock/echo", "hello", "gateway")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == "echo: hello gateway\n"
    whole = run("chat", "--url", gateway.url, "--no-stream", "-m", "mock/echo", "again")
    assert whole.stdout == "echo: again\n"
    models = run("models", "--url", gateway.url)
    assert models.stdout.split() == ["mock/echo"]
    health = run("health", "--url", gateway.url)
    assert health.returncode == 0
    assert "ready" in health.stdout and "mock" in health.stdout


def test_health_of_nothing_exits_1() -> None:
    result = run("health", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_providers_prints_the_capability_table() -> None:
    result = run("providers")
    assert result.returncode == 0
    assert "| openai | ✓ | ✓ | ✓ | ✓ | ✓ |" in result.stdout
    assert "| anthropic | ✓ |" in result.stdout


def test_check_config_on_good_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[server]\nmaster_key = "sk-x"\n[providers.acme]\napi_base = "http://127.0.0.1:1/v1"\n'
        "[middlewares]\nretry = { attempts = 2 }\n"
    )
    result = run("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "acme" in result.stdout and "Retry" in result.stdout

    bad = tmp_path / "bad.json"
    bad.write_text('{"server": {"port": "eighty"}}')
    result = run("check-config", str(bad))
    assert result.returncode == 1
    assert "server.port: expected an integer from 1 to 65535, got 'eighty'" in result.stderr

    missing = run("check-config", str(tmp_path / "absent.toml"))
    assert missing.returncode == 1 and "cannot read the config file" in missing.stderr


def test_without_the_extra_the_command_names_it() -> None:
    code = "import sys; sys.modules['click'] = None; from gateway._entry import main; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'dispatchline[gateway]'" in result.stderr
    assert "missing: click" in result.stderr


def test_hash_key_prints_an_entry_for_the_config() -> None:
    result = run("hash-key", "sk-abc")
    assert result.returncode == 0
    assert 'sha256 = "' in result.stdout
    assert "sk-abc" not in result.stdout


@pytest.mark.parametrize("blocked", ["coredis", "genai_prices", "ddsketch", "opentelemetry"])
def test_the_gateway_runs_with_its_own_extra_alone(blocked: str) -> None:
    """`pip install dispatchline[gateway]` is enough for a config that asks for no other extra."""
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from gateway import create_app\n"
        "app = create_app(config='gateway/demo.toml')\n"
        "sys.argv = ['dispatchline', 'check-config', 'gateway/demo.toml']\n"
        "from gateway._entry import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
