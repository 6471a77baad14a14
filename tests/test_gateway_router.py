"""The gateway's [router] section: read strictly, served as models, routed, kept across reloads."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway import ConfigError, create_app, load_config, parse_config
from middlewares import Router
from pipeline import Pipeline
from tests._fake_openai import FakeOpenAI
from tests.test_gateway_app import serving
from tests.test_gateway_cli import run as run_cli
from tests.test_gateway_usage import _write

HI = [{"role": "user", "content": "hi"}]
README = Path(__file__).resolve().parent.parent / "README.md"
DEMO = Path(__file__).resolve().parent.parent / "gateway" / "demo.toml"
DEPLOY_KEY = "sk-deployment-secret-4242424242"


def _router(pipeline: Pipeline) -> Router:
    return next(m for m in pipeline.middlewares if isinstance(m, Router))


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- gateway-router:start -->")
    block = text[start : text.index("<!-- gateway-router:end -->")]
    return block.split("```toml\n", 1)[1].split("```", 1)[0]


class Reversed:
    """A custom strategy, named in a config file as ``tests.test_gateway_router:Reversed``."""

    def order(self, deployments: Any, context: Any) -> Any:
        return reversed(deployments)


# -- reading ------------------------------------------------------------------------


def test_the_readme_example_loads_into_the_router_it_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_KEY_2", DEPLOY_KEY)
    config = load_config(_write(tmp_path, _readme_example()))
    router = _router(config.build_pipeline())
    assert router.groups == ("chat-fast", "chat-long", "embed")
    assert repr(router) == (
        "Router(groups=['chat-fast', 'chat-long', 'embed'], strategy='weighted', rules=3, "
        "hedge='p95')"
    )
    shown = {
        name: (d.target, d.groups, d.weight, d.priority, d.rpm, d.tpm, d.max_concurrency)
        for name, d in router.snapshot().deployments.items()
    }
    assert shown == {
        "openai/gpt-4o-mini": ("openai/gpt-4o-mini", ("chat-fast",), 3.0, 0, 500, 200_000, None),
        "azure-eu": ("azure/my-4o-mini", ("chat-fast",), 1.0, 0, None, None, 20),
        "groq/llama-3.1-8b-instant": (
            "groq/llama-3.1-8b-instant",
            ("chat-fast",),
            1.0,
            1,
            None,
            None,
            None,
        ),
        "anthropic/claude-3-5-haiku-latest": (
            "anthropic/claude-3-5-haiku-latest",
            ("chat-long",),
            1.0,
            0,
            None,
            None,
            None,
        ),
        "openai-2": ("openai/gpt-4o-mini", ("chat-long",), 1.0, 0, None, 200_000, None),
        "openai/text-embedding-3-small": (
            "openai/text-embedding-3-small",
            ("embed",),
            1.0,
            0,
            None,
            None,
            None,
        ),
        "mistral/mistral-embed": ("mistral/mistral-embed", ("embed",), 1.0, 0, None, None, None),
    }


def test_json_reads_the_same_and_a_custom_strategy_is_imported(tmp_path: Path) -> None:
    toml = (
        '[router]\nstrategy = "tests.test_gateway_router:Reversed"\nmax_wait = 1\n'
        '[[router.groups.g]]\ntarget = "mock/a"\nweight = 2\n'
        '[[router.groups.g]]\ntarget = "mock/b"\ntags = ["x"]\n'
    )
    data = {
        "router": {
            "strategy": "tests.test_gateway_router:Reversed",
            "max_wait": 1,
            "groups": {
                "g": [{"target": "mock/a", "weight": 2}, {"target": "mock/b", "tags": ["x"]}]
            },
        }
    }
    from_toml = _router(load_config(_write(tmp_path, toml)).build_pipeline())
    from_json = _router(load_config(_write(tmp_path, json.dumps(data), "gw.json")).build_pipeline())
    assert from_toml.snapshot() == from_json.snapshot()
    assert "strategy=<tests.test_gateway_router.Reversed" in repr(from_json)


def test_no_router_section_means_no_router() -> None:
    pipe = parse_config({"providers": {"mock": {}}}).build_pipeline()
    assert not any(isinstance(m, Router) for m in pipe.middlewares)


ONE = '[[router.groups.g]]\ntarget = "mock/a"\n'


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[router]\nstrategy = "fastest"\n' + ONE, 2, "router.strategy: expected one of weighted"),
        ('[router]\nstrategey = "latency"\n' + ONE, 2, "unknown key (did you mean 'strategy'?)"),
        ("[router]\nmax_wait = 1\n", 1, "router.groups: is required"),
        ("[router.groups]\ng = []\n", 2, "router.groups.g: the group is empty"),
        ('[router.groups]\ng = "mock/a"\n', 2, "router.groups.g: expected an array of tables"),
        (
            ONE + '[[router.rules]]\ntarget = "nowhere"\n',
            4,
            "router.rules[0].target: points nowhere: 'nowhere' is neither a group (g)",
        ),
        (
            ONE + '[[router.rules]]\ntarget = "nosuch/model"\n',
            4,
            "router.rules[0].target: points nowhere",
        ),
        (ONE + "weight = -1\n", 3, "router.groups.g[0].weight: expected a positive number"),
        (ONE + "rpm = 0\n", 3, "router.groups.g[0].rpm: expected an integer from 1 up"),
        (ONE + "priority = -1\n", 3, "router.groups.g[0].priority: expected an integer from 0"),
        (ONE + "wieght = 2\n", 3, "g[0].wieght: unknown key (did you mean 'weight'?)"),
        ('[[router.groups.g]]\ntarget = "a-model"\n', 2, "g[0].target: expected 'provider/model'"),
        ('[[router.groups.g]]\ntarget = "nosuch/m"\n', 2, "g[0].target: no provider 'nosuch'"),
        (
            ONE + 'name = "x"\n' + ONE + 'name = "x"\n',
            6,
            "router.groups.g[1].name: 'x' is already the name of router.groups.g[0].name",
        ),
        (
            ONE + 'name = "x"\n[[router.groups.h]]\ntarget = "mock/b"\nname = "x"\n',
            6,
            "router.groups.h[0].name: 'x' is already router.groups.g[0].name, configured otherwise",
        ),
        (  # the Router's own check, named as the section
            '[router]\n\n[[router.groups.g]]\ntarget = "mock/a"\n'
            '[[router.groups.h]]\ntarget = "mock/b"\nname = "mock/a"\n',
            1,
            "router: group 'h': the name 'mock/a' is already used by a different deployment",
        ),
        (
            ONE + 'api_key = "k"\napi_key_env = "K"\n',
            4,
            "g[0].api_key_env: give api_key or api_key_env, not both",
        ),
        (
            "[router]\nbreaker = { failure_ratio = 1.5 }\n" + ONE,
            2,
            "router.breaker: CircuitBreaker failure_ratio is at most 1",
        ),
        ("[router]\nbreaker = { cooldwn = 5 }\n" + ONE, 2, "router.breaker.cooldwn: unknown key"),
        ("[router]\nbreaker = 5\n" + ONE, 2, "router.breaker: expected true, false or a table"),
        (
            '[router]\nhedge = { after = "p99" }\n' + ONE,
            2,
            'router.hedge.after: expected a number of seconds >= 0, or "p95"',
        ),
        (
            "[router]\nhedge = { after = 1, max_extra = 0 }\n" + ONE,
            2,
            "router.hedge.max_extra: expected an integer from 1 up",
        ),
        (
            "[router]\nhedge = { after = 1, budget = { ratio = -1 } }\n" + ONE,
            2,
            "router.hedge.budget.ratio: expected a number >= 0",
        ),
        ("[router]\nmax_wait = -1\n" + ONE, 2, "router.max_wait: expected a number >= 0"),
        ("[router]\nmax_attempts = 0\n" + ONE, 2, "router.max_attempts: expected an integer"),
        (
            '[router]\ntoken_counter = "nosuch_module:count"\n' + ONE,
            2,
            "router.token_counter: cannot import 'nosuch_module:count'",
        ),
        (
            '[router]\nstrategy = "json:dumps"\n' + ONE,
            2,
            "router.strategy: 'json:dumps' has no order(deployments, context) method",
        ),
    ],
)
def test_bad_router_values_name_the_file_line_and_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _write(tmp_path, '[providers.mock]\nmodels = ["echo"]\n\n' + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line + 3}: "), str(caught.value)
    assert message in str(caught.value)


def test_json_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = '{"router": {"groups": {"g": [{"target": "mock/a"}], "g": [{"target": "mock/b"}]}}}'
    with pytest.raises(ConfigError, match="'g' is given twice in one object"):
        load_config(_write(tmp_path, text, "gw.json"))


def test_a_deployment_key_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_KEY", DEPLOY_KEY)
    good = _write(tmp_path, ONE + 'api_key = "${DEPLOY_KEY}"\n')
    config = load_config(good)
    assert DEPLOY_KEY not in repr(config) + repr(config.build_pipeline())
    checked = run_cli("check-config", str(good))
    assert checked.returncode == 0, checked.stderr
    assert "group g: mock/a" in checked.stdout
    assert DEPLOY_KEY not in checked.stdout + checked.stderr
    # Errors about the deployment's table, or about the key itself, never show it.
    for bad in (ONE + f'api_key = "{DEPLOY_KEY}"\nrpm = -1\n', ONE + "api_key = 4242424242\n"):
        with pytest.raises(ConfigError) as caught:
            load_config(_write(tmp_path, bad))
        assert "4242424242" not in str(caught.value)
    refused = run_cli("check-config", str(_write(tmp_path, ONE + "api_key = ['sk-4242424242']\n")))
    assert refused.returncode == 1
    assert "api_key: expected a non-empty string, got a list" in refused.stderr
    assert "4242424242" not in refused.stderr


# -- the CLI ---------------------------------------------------------------------------

GOOD = """\
[providers.mock]
models = ["echo"]

[router]
strategy = "least_busy"

[[router.groups.chat]]
target = "mock/fast"
weight = 3

[[router.groups.chat]]
target = "mock/steady"
name = "steady"
priority = 1

[[router.groups.embed]]
target = "mock/vectors"
"""


def test_check_config_and_models_show_the_groups(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    checked = run_cli("check-config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "  group chat: mock/fast weight 3, steady (mock/steady) priority 1\n" in checked.stdout
    assert "  group embed: mock/vectors\n" in checked.stdout
    assert "Router(groups=['chat', 'embed'], strategy='least_busy')" in checked.stdout
    models = run_cli("models", "--config", str(path))
    assert models.returncode == 0, models.stderr
    assert models.stdout.split() == ["chat", "embed", "mock/echo"]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('"least_busy"', '"fastest"', ":5: router.strategy: expected one of weighted"),
        ("weight = 3", "weight = -3", ":9: router.groups.chat[0].weight: expected a positive"),
        (
            '[[router.groups.embed]]\ntarget = "mock/vectors"\n',
            "[router.groups]\nembed = []\n",
            ":17: router.groups.embed: the group is empty",
        ),
        (
            '"mock/vectors"\n',
            '"mock/vectors"\n\n[[router.rules]]\ntarget = "chat-slow"\n',
            ":20: router.rules[0].target: points nowhere: 'chat-slow' is neither a group",
        ),
        (
            "weight = 3",
            'weight = 3\nname = "steady"',
            ":14: router.groups.chat[1].name: 'steady' is already the name of",
        ),
    ],
)
def test_check_config_refuses_bad_router_sections(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    refused = run_cli("check-config", str(path))
    assert refused.returncode == 1
    assert f"{path}{says}" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


# -- reloads -----------------------------------------------------------------------------


def _state_after(kept: dict[Any, Any], folder: Path, text: str) -> Any:
    return _router(load_config(_write(folder, text)).build_pipeline(kept)).state


def test_router_state_carries_over_a_reload_unless_a_deployment_it_knew_changed(
    tmp_path: Path,
) -> None:
    kept: dict[Any, Any] = {}
    first = _state_after(kept, tmp_path, GOOD)
    same = (
        GOOD,
        GOOD.replace("weight = 3", "weight = 5"),  # what the state does not depend on
        GOOD.replace('"least_busy"', '"latency"\nmax_wait = 2\nhedge = { after = 1 }'),
        GOOD + '\n[[router.groups.more]]\ntarget = "mock/new"\n',  # a new deployment
        GOOD.replace('[[router.groups.embed]]\ntarget = "mock/vectors"\n', ""),  # one less
        GOOD + "\n[middlewares]\ncache = false\n",  # elsewhere in the file
    )
    for text in same:
        assert _state_after(kept, tmp_path, text) is first, text
    fresh = (
        GOOD.replace("weight = 3", "weight = 3\nrpm = 100"),  # a limit
        GOOD.replace('"least_busy"', '"least_busy"\nbreaker = { cooldown = 5 }'),
        GOOD.replace('target = "mock/steady"', 'target = "mock/other"'),  # under the same name
        GOOD.replace("weight = 3", 'weight = 3\napi_base = "http://127.0.0.1:9/v1"'),
    )
    for text in fresh:
        state = _state_after(kept, tmp_path, GOOD)
        assert _state_after(kept, tmp_path, text) is not state, text
    # A deployment that left and comes back otherwise configured starts fresh too:
    # the state remembers what it knew of it.
    state = _state_after(kept, tmp_path, GOOD)
    assert _state_after(kept, tmp_path, GOOD.split("[[router.groups.embed]]")[0]) is state
    back = GOOD.replace('target = "mock/vectors"', 'target = "mock/vectors"\nmax_concurrency = 2')
    assert _state_after(kept, tmp_path, back) is not state
    load_config(_write(tmp_path, "")).build_pipeline(kept)
    assert kept == {}  # a file without [router] lets the state go


# -- through the app ---------------------------------------------------------------------


MOCK_GROUPS = {
    "providers": {"mock": {"models": ["echo"]}},
    "router": {
        "groups": {
            "chat": [{"target": "mock/heavy", "weight": 3}, {"target": "mock/light"}],
            "tiered": [{"target": "mock/backup", "priority": 1}, {"target": "mock/main"}],
        },
        "rules": [{"target": "tiered", "model": "gpt-*"}],
    },
    "middlewares": {"logging": False, "cache": False},
}


@pytest.mark.anyio
async def test_groups_are_models_and_weights_and_priority_hold_through_the_app() -> None:
    async with serving(create_app(config=parse_config(MOCK_GROUPS))) as client:
        listed = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert listed == ["chat", "tiered", "mock/echo"]
        assert (await client.get("/v1/models/chat")).json()["owned_by"] == "dispatchline"

        async def served_by(model: str, n: int) -> Counter[str]:
            seen: Counter[str] = Counter()
            for _ in range(n):
                reply = await client.post(
                    "/v1/chat/completions", json={"model": model, "messages": HI}
                )
                assert reply.status_code == 200, reply.text
                seen[reply.json()["model"]] += 1  # the mock answers with the model it was sent
            return seen

        weighted = await served_by("chat", 200)
        assert set(weighted) == {"heavy", "light"}
        assert 115 <= weighted["heavy"] <= 185  # 3:1 (150 expected; sd about 6)
        assert await served_by("tiered", 10) == {"main": 10}  # tier 0 while it is healthy
        assert await served_by("gpt-4o", 5) == {"main": 5}  # a rule sends it to "tiered"
        async with client.stream(
            "POST", "/v1/chat/completions", json={"model": "chat", "messages": HI, "stream": True}
        ) as stream:
            assert stream.status_code == 200
            events = [line async for line in stream.aiter_lines() if line.startswith("data: {")]
        assert {json.loads(e[6:])["model"] for e in events} <= {"heavy", "light"}
        missing = await client.post(
            "/v1/chat/completions", json={"model": "nosuch", "messages": HI}
        )
        assert missing.status_code == 404


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


FAILOVER = """[providers.up]
api_base = "{base}"

[router]
strategy = "priority"
breaker = {{ min_requests = 2, failure_ratio = 0.5, cooldown = 600 }}

[[router.groups.chat]]
target = "up/error-502"
api_key = "${{DEPLOY_KEY}}"
rpm = {rpm}

[[router.groups.chat]]
target = "up/gpt-4o-mini"
api_key_env = "DEPLOY_KEY"

[[router.groups.careless]]
target = "up/echo-key"
api_key = "${{DEPLOY_KEY}}"

[middlewares]
retry = false
cache = false
"""


@pytest.mark.anyio
async def test_failover_on_5xx_the_breaker_and_a_reload_through_the_app(
    tmp_path: Path, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_KEY", DEPLOY_KEY)
    path = _write(tmp_path, FAILOVER.format(base=upstream.base_url, rpm=1000))
    app = create_app(config=path)
    chat = {"model": "chat", "messages": HI}
    said: list[str] = []
    with structlog.testing.capture_logs() as logs:
        async with serving(app) as client:

            async def ask() -> None:
                reply = await client.post("/v1/chat/completions", json=chat)
                assert reply.status_code == 200, reply.text
                said.append(reply.text + repr(reply.headers))

            def failing() -> int:
                return len(upstream.seen("error-502"))

            await ask()  # the first deployment answers 502: the second one serves
            assert (failing(), len(upstream.seen("gpt-4o-mini"))) == (1, 1)
            await ask()  # two failures out of two: its breaker opens
            await ask()
            await ask()
            assert (failing(), len(upstream.seen("gpt-4o-mini"))) == (2, 4)
            assert {r["authorization"] for r in upstream.requests} == {f"Bearer {DEPLOY_KEY}"}

            path.write_text(path.read_text().replace("cache = false", "cache = true"))
            assert (await client.post("/admin/reload")).status_code == 200
            await ask()  # the same deployments: the breaker is still open
            assert failing() == 2
            path.write_text(path.read_text().replace("rpm = 1000", "rpm = 999"))
            assert (await client.post("/admin/reload")).status_code == 200
            await ask()  # that deployment changed: it starts fresh, and is tried first again
            assert failing() == 3

            careless = await client.post(
                "/v1/chat/completions", json={"model": "careless", "messages": HI}
            )
            assert careless.status_code == 401
            said.append(careless.text + repr(careless.headers))
            assert upstream.seen("echo-key")[0]["authorization"] == f"Bearer {DEPLOY_KEY}"
    assert logs
    for text in [*said, repr(logs)]:
        assert DEPLOY_KEY not in text
        assert not re.search(r"4242424242", text)


# -- the demo ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_demo_config_routes_its_mock_group() -> None:
    async with serving(create_app(config=DEMO)) as client:
        listed = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert "chat" in listed and "mock/echo" in listed
        seen = set()
        for _ in range(40):
            reply = await client.post(
                "/v1/chat/completions", json={"model": "chat", "messages": HI}
            )
            assert reply.json()["choices"][0]["message"]["content"] == "echo: hi"
            seen.add(reply.json()["model"])
        assert seen == {"fast", "steady"}
