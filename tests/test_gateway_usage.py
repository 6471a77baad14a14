"""The gateway's usage layers from its config: Stats, Costs, Budgets, Telemetry, key budgets."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import ConfigError, create_app, load_config, parse_config
from middlewares import Budget, Costs, ErrorMapping, Logging, Retry, Stats, Telemetry
from tests._fake_openai import UPSTREAM_KEY, FakeOpenAI
from tests._usage import library_price
from tests.conftest import load_recorded
from tests.test_gateway_app import serving
from tests.test_gateway_cli import run as run_cli

HI = [{"role": "user", "content": "hi"}]

USAGE = """\
[middlewares]
stats = true
costs = true
telemetry = true
cache = false

[[middlewares.budgets]]
limit_usd = 25.0
period = "day"
scope = "provider"

[[middlewares.budgets]]
limit_usd = 2
period = 600
scope = "model"
"""


def _write(folder: Path, text: str, name: str = "gw.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_usage_layers_are_built_in_the_default_order(tmp_path: Path) -> None:
    pipe = load_config(_write(tmp_path, USAGE)).build_pipeline()
    kinds = [type(layer) for layer in pipe.middlewares]
    assert kinds == [Logging, Telemetry, Stats, Budget, Budget, Costs, Retry, ErrorMapping]
    budgets = [repr(layer) for layer in pipe.middlewares if isinstance(layer, Budget)]
    assert budgets == [
        "Budget(25.0, period='day', scope='provider')",
        "Budget(2.0, period=600.0, scope='model')",
    ]


def test_json_reads_the_same_and_everything_is_off_unless_written(tmp_path: Path) -> None:
    data = {"middlewares": {"stats": True, "budgets": [{"limit_usd": 1, "scope": "tag"}]}}
    pipe = load_config(_write(tmp_path, json.dumps(data), "gw.json")).build_pipeline()
    kinds = {type(layer) for layer in pipe.middlewares}
    assert {Stats, Budget, Costs} <= kinds and Telemetry not in kinds  # budgets bring Costs
    plain = parse_config({}).build_pipeline()
    assert not {Stats, Budget, Costs, Telemetry} & {type(m) for m in plain.middlewares}


def test_a_virtual_key_budget_brings_costs() -> None:
    config = parse_config({"server": {"keys": [{"name": "k", "key": "sk-k", "budget": 1.0}]}})
    assert any(isinstance(m, Costs) for m in config.build_pipeline().middlewares)


def test_stats_and_unchanged_budgets_survive_a_rebuild_other_layers_do_not(
    tmp_path: Path,
) -> None:
    kept: dict[Any, Any] = {}
    first = load_config(_write(tmp_path, USAGE)).build_pipeline(kept)
    again = load_config(_write(tmp_path, USAGE)).build_pipeline(kept)
    for old, new in zip(first.middlewares, again.middlewares, strict=True):
        if isinstance(old, Stats | Budget):
            assert new is old
        else:
            assert new is not old
    edited = USAGE.replace("limit_usd = 2\n", "limit_usd = 3\n")
    third = load_config(_write(tmp_path, edited)).build_pipeline(kept)
    budgets = [m for m in third.middlewares if isinstance(m, Budget)]
    assert budgets[0] is first.middlewares[3] and budgets[1] is not first.middlewares[4]
    assert [type(m) for m in load_config(_write(tmp_path, "")).build_pipeline(kept).middlewares]
    assert kept == {}  # a config without them lets them go


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[middlewares]\nstats = "yes"\n', 2, "middlewares.stats: expected true or false"),
        ("[middlewares]\ntelemetry = 1\n", 2, "middlewares.telemetry: expected true or false"),
        ('[middlewares]\ncosts = "on"\n', 2, "middlewares.costs: expected true or false"),
        (
            "[[middlewares.budgets]]\nlimit_usd = 0\n",
            2,
            "middlewares.budgets[0].limit_usd: expected a positive number",
        ),
        (
            "[[middlewares.budgets]]\nperiod = 'day'\n",
            1,
            "middlewares.budgets[0].limit_usd: is required",
        ),
        (
            '[[middlewares.budgets]]\nlimit_usd = 5\nperiod = "week"\n',
            3,
            "middlewares.budgets[0].period: expected one of hour, day, month or seconds",
        ),
        (
            "[[middlewares.budgets]]\nlimit_usd = 5\nperiod = -60\n",
            3,
            "middlewares.budgets[0].period: expected a positive number",
        ),
        (
            '[[middlewares.budgets]]\nlimit_usd = 5\nscope = "team"\n',
            3,
            "middlewares.budgets[0].scope: expected one of provider, model, deployment, tag",
        ),
        (
            '[[middlewares.budgets]]\nlimit_usd = 5\nscop = "model"\n',
            3,
            "middlewares.budgets[0].scop: unknown key (did you mean 'scope'?)",
        ),
        (
            "[[middlewares.budgets]]\nlimit_usd = 5\n[[middlewares.budgets]]\nlimit_usd = 5\n",
            3,
            "middlewares.budgets[1]: the same budget is given twice",
        ),
        (
            "[middlewares]\nbudgets = { limit_usd = 5 }\n",
            2,
            "middlewares.budgets: expected an array of tables",
        ),
        (
            "[middlewares]\ncosts = false\n[[middlewares.budgets]]\nlimit_usd = 5\n",
            2,
            "middlewares.costs: is false, but [[middlewares.budgets]] counts each reply's cost",
        ),
        (
            '[[server.keys]]\nname = "team"\nkey = "k"\nbudget = 1\n[middlewares]\ncosts = false\n',
            6,
            "middlewares.costs: is false, but the budget of the virtual key 'team' counts",
        ),
    ],
)
def test_bad_usage_values_name_the_file_line_and_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("module", "text", "message"),
    [
        ("ddsketch", "[middlewares]\nstats = true\n", "middlewares.stats: Stats needs ddsketch"),
        (
            "genai_prices",
            '[[server.keys]]\nname = "team"\nkey = "k"\nbudget = 1\n',
            "middlewares.costs: needed by the budget of the virtual key 'team': Costs needs",
        ),
    ],
)
def test_a_missing_extra_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, text: str, message: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert message in str(caught.value) and "pip install 'dispatchline[" in str(caught.value)


def test_check_config_accepts_the_usage_sections_and_refuses_bad_values(tmp_path: Path) -> None:
    good = _write(tmp_path, USAGE)
    accepted = run_cli("check-config", str(good))
    assert accepted.returncode == 0, accepted.stderr
    bad = _write(tmp_path, USAGE.replace('scope = "model"', 'scope = "everyone"'), "bad.toml")
    refused = run_cli("check-config", str(bad))
    assert refused.returncode != 0
    assert f"{bad}:15: middlewares.budgets[1].scope: expected one of" in refused.stderr


# -- through the app, in process ------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _recorded_cost(name: str) -> float:
    """What genai-prices says the recorded reply's usage costs."""
    body = load_recorded(name)["response"]["body"]
    if isinstance(body, str):  # a stream: its last event with usage
        events = [json.loads(e[6:]) for e in body.split("\n\n") if e.startswith("data: {")]
        body = next(e for e in reversed(events) if e.get("usage"))
    usage = body["usage"]
    return library_price(
        body["model"],
        "openai",
        input_tokens=usage["prompt_tokens"],
        output_tokens=usage["completion_tokens"],
    )


@pytest.mark.anyio
async def test_a_key_budget_counts_replies_and_streams_then_answers_429(
    upstream: FakeOpenAI,
) -> None:
    reply = _recorded_cost("openai/chat_basic.json")
    streamed = _recorded_cost("openai/chat_stream_text_include_usage.json")
    assert reply > 0 and streamed > 0
    # One reply stays under the budget; a reply and a stream reach it; either
    # alone uncounted would leave room for a third request.
    budget = reply + streamed / 2
    config = parse_config(
        {
            "server": {
                "master_key": "sk-master-1",
                "keys": [{"name": "team", "key": "sk-team", "budget": budget}],
            },
            "providers": {"openai": {"api_base": upstream.base_url, "api_key": UPSTREAM_KEY}},
            "middlewares": {"logging": False, "cache": False, "retry": False},
        }
    )
    team = {"authorization": "Bearer sk-team"}
    body = {"model": "openai/gpt-4o", "messages": HI}
    async with serving(create_app(config=config)) as client:
        first = await client.post("/v1/chat/completions", json=body, headers=team)
        assert first.status_code == 200, first.text
        async with client.stream(
            "POST", "/v1/chat/completions", json={**body, "stream": True}, headers=team
        ) as stream:
            assert stream.status_code == 200
            text = "".join([part async for part in stream.aiter_text()])
        assert text.endswith("data: [DONE]\n\n")
        spent = await client.post("/v1/chat/completions", json=body, headers=team)
        assert spent.status_code == 429, spent.text
        assert spent.json()["error"]["code"] == "budget_exceeded"
        assert spent.headers["x-should-retry"] == "false"
        refused_stream = await client.post(
            "/v1/chat/completions", json={**body, "stream": True}, headers=team
        )
        assert refused_stream.status_code == 429
        master = {"authorization": "Bearer sk-master-1"}
        assert (await client.post("/v1/chat/completions", json=body, headers=master)).is_success
    assert len(upstream.seen("gpt-4o")) == 3  # the refused ones never left the gateway


@pytest.mark.anyio
async def test_a_caller_cannot_set_its_own_price(upstream: FakeOpenAI) -> None:
    config = parse_config(
        {
            "server": {"keys": [{"name": "team", "key": "sk-team", "budget": 1e-9}]},
            "providers": {"openai": {"api_base": upstream.base_url, "api_key": UPSTREAM_KEY}},
        }
    )
    free = {"input_cost_per_token": 0, "output_cost_per_token": 0}
    body = {"model": "openai/gpt-4o", "messages": HI, "metadata": free}
    async with serving(create_app(config=config)) as client:
        answer = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-team"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "metadata"
    assert upstream.requests == []


@pytest.mark.anyio
async def test_stats_from_the_config_serve_metrics_and_survive_a_reload(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    path = _write(tmp_path, "[middlewares]\nstats = true\nlogging = false\n")
    app = create_app(config=path)
    chat = {"model": "mock/echo", "messages": HI}

    def successes(text: str) -> float:
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return sum(
            s.value
            for s in families["dispatchline_requests"].samples
            if s.labels == {"provider": "mock", "model": "echo", "outcome": "success"}
        )

    async with serving(app) as client:
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and successes(metrics.text) == 1
        payload = (await client.get("/api/v1/stats")).json()
        assert payload["targets"]["mock/echo"]["requests"] == 1
        path.write_text("[middlewares]\nstats = true\nlogging = false\ncache = false\n")
        assert (await client.post("/admin/reload")).status_code == 200
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        assert successes((await client.get("/metrics")).text) == 2
        assert (await client.get("/api/v1/stats")).json()["targets"]["mock/echo"]["requests"] == 2
        path.write_text("[middlewares]\nlogging = false\n")
        assert (await client.post("/admin/reload")).status_code == 200
        gone = await client.get("/metrics")
        assert gone.status_code == 404 and "Stats" in gone.json()["error"]["message"]
