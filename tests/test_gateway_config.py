"""The gateway's config file: strict reading, errors that name file, line and key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway import ConfigError, load_config
from middlewares import Cache, Costs, Fallback, Retry

FULL = """\
[server]
host = "127.0.0.1"
port = 4100
master_key = "${GW_MASTER}"
keys_file = "keys.toml"
graceful_timeout = 5
ping_interval = 10
max_body_bytes = 1048576

[[server.keys]]
name = "inline"
key = "${GW_TEAM:-sk-team-default}"
models = ["mock/*"]
rpm = 10

[providers.openai]
api_base = "http://127.0.0.1:9/v1"
api_key = "${GW_OPENAI}"
timeout = 12.5
headers = { "x-team" = "a" }

[providers.acme]
api_base = "http://127.0.0.1:9/acme/v1"
endpoints = ["chat", "embedding"]
models = ["acme-large"]

[middlewares]
logging = false
cache = { max_entries = 10, ttl = 60 }
retry = { attempts = 2, deadline = 5 }
fallbacks = ["mock/echo"]
"""

KEYS = """\
[[keys]]
name = "from-file"
sha256 = "{digest}"
budget = 2.5
budget_period = "day"
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_MASTER", "sk-master-env")
    monkeypatch.setenv("GW_OPENAI", "sk-openai-env")
    monkeypatch.delenv("GW_TEAM", raising=False)


def _write(folder: Path, text: str, name: str = "gw.toml") -> Path:
    path = folder / name
    path.write_text(text)
    digest = hashlib.sha256(b"sk-file").hexdigest()
    (folder / "keys.toml").write_text(KEYS.format(digest=digest))
    return path


def test_a_full_config_loads_and_builds_its_pipeline(tmp_path: Path, env: None) -> None:
    config = load_config(_write(tmp_path, FULL))
    server = config.server
    assert (
        server.host,
        server.port,
        server.graceful_timeout,
        server.ping_interval,
        server.max_body_bytes,
    ) == ("127.0.0.1", 4100, 5.0, 10.0, 1048576)
    assert server.master_key is not None and server.master_key.reveal() == "sk-master-env"
    assert [k.name for k in server.keys] == ["inline", "from-file"]
    assert server.keys[0].sha256 == hashlib.sha256(b"sk-team-default").digest()
    assert (server.keys[1].budget, server.keys[1].budget_period) == (2.5, "day")
    pipe = config.build_pipeline()
    openai = pipe.registry.adapters["openai"]
    assert openai.base_url == "http://127.0.0.1:9/v1"  # type: ignore[attr-defined]
    assert openai.api_key.reveal() == "sk-openai-env"  # type: ignore[attr-defined]
    assert openai.timeout == 12.5 and openai.headers == {"x-team": "a"}  # type: ignore[attr-defined]
    acme = pipe.registry.adapters["acme"]
    assert acme.endpoints == {"chat", "embedding"} and acme.models == {"acme-large"}
    kinds = [type(layer) for layer in pipe.middlewares]
    # logging = false; Costs because the key "from-file" has a budget
    assert kinds[:4] == [Cache, Fallback, Costs, Retry]
    assert "sk-openai-env" not in repr(config) and "sk-master-env" not in repr(config)
    again = config.build_pipeline()
    assert again.middlewares[0] is not pipe.middlewares[0]  # every pipeline gets its own


def test_json_reads_the_same_as_toml(tmp_path: Path) -> None:
    data = {"server": {"port": 4200}, "middlewares": {"cache": False, "retry": {"attempts": 5}}}
    config = load_config(_write(tmp_path, json.dumps(data), "gw.json"))
    assert config.server.port == 4200
    assert [type(m).__name__ for m in config.build_pipeline().middlewares] == [
        "Logging",
        "Retry",
        "ErrorMapping",
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[server]\nprot = 1\n", 2, "server.prot: unknown key (did you mean 'port'?)"),
        ("[sever]\n", 1, "sever: unknown key (did you mean 'server'?)"),
        ("[server]\nport = 70000\n", 2, "server.port: expected an integer from 1 to 65535"),
        ("[server]\nmax_body_bytes = 0\n", 2, "server.max_body_bytes: expected an integer from 1"),
        (
            '[server]\nmaster_key = "${NOT_SET_ANYWHERE}"\n',
            2,
            "server.master_key: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "[providers.openai]\napi_base = 3\n",
            2,
            "providers.openai.api_base: expected a non-empty",
        ),
        (
            '[providers.anthropic]\napi_version = "x"\n',
            2,
            "providers.anthropic.api_version: anthropic does not take api_version",
        ),
        ('[providers.newco]\napi_key = "k"\n', 1, "providers.newco.api_base: is required"),
        (
            '[providers.acme]\napi_base = "http://x"\nendpoints = ["chat", "video"]\n',
            3,
            "providers.acme.endpoints: 'video' is not one of",
        ),
        ('[middlewares]\ncache = "yes"\n', 2, "middlewares.cache: expected true, false or a table"),
        ("[middlewares]\nretry = { attempts = 0 }\n", 2, "middlewares.retry.attempts: expected an"),
        ("[middlewares]\nretry = { base_delay = 5, max_delay = 1 }\n", 2, "middlewares.retry:"),
        ('[middlewares]\nfallbacks = "mock/echo"\n', 2, "middlewares.fallbacks: expected a list"),
        ('[[server.keys]]\nname = "a"\nsha256 = "abc"\n', 3, "server.keys[0].sha256: expected 64"),
        ('[[server.keys]]\nname = "a"\n', 1, "give exactly one of sha256 (hex digest) and key"),
        (
            '[[server.keys]]\nname = "a"\nkey = "k"\n[[server.keys]]\nname = "a"\nkey = "j"\n',
            1,
            "two virtual keys are named 'a'",
        ),
        ('[server]\nkeys_file = "nowhere.toml"\n', 2, "server.keys_file: cannot read"),
        ("port = ", None, "not valid TOML"),
    ],
)
def test_bad_values_name_the_file_line_and_key(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(caught.value).startswith(where), str(caught.value)
    assert message in str(caught.value)
