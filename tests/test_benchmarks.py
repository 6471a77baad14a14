"""The benchmark harness: what it measures is what it says, and it reports it whole.

Structure and behaviour only: no test here looks at a timing. Needs the
``[bench]`` extra: without it the module is skipped, except in CI, where it fails.
"""

# ruff: noqa: E402  (the extra is checked before the imports that need it)
from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

_MISSING = [
    m for m in ("aiohttp", "httpx_aiohttp", "rich", "matplotlib") if not importlib.util.find_spec(m)
]
if _MISSING:
    _REASON = f"the [bench] extra is not installed (missing: {', '.join(_MISSING)})"
    if os.environ.get("CI"):
        pytest.fail(_REASON, pytrace=False)
    pytest.skip(_REASON, allow_module_level=True)

from benchmarks import __main__ as cli
from benchmarks import analysis, breakdown, lookup, resolve
from benchmarks import run as run_module
from benchmarks.fresh import run_rounds
from benchmarks.interleave import interleaved
from benchmarks.overhead import DEFAULT, RAW, SESSION, Load, OverheadRow
from benchmarks.replies import STREAM_CHUNKS
from benchmarks.run import Scale, steps
from benchmarks.server import LoopbackServer
from benchmarks.stats import Summary
from benchmarks.streaming import measure_stream_target
from benchmarks.targets import API_KEY, MODEL, Target, mock_target
from pipeline import ChatResponse, Pipeline, errors

pytestmark = pytest.mark.anyio

TINY = Scale("tiny", (5, 47), 1, 2, 0.0, Load(5, 0.0, 0.05, rounds=2, concurrency=5), 1, 1)
HI = [{"role": "user", "content": "hi"}]


# -- the generated dispatchers ---------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 47])
@pytest.mark.parametrize("build", [lookup.ifelif_dispatcher, lookup.dict_dispatcher])
def test_dispatcher_returns_each_names_handler_and_rejects_unknown(n: int, build: Any) -> None:
    names = lookup.provider_names(n)
    handlers = [object() for _ in names]
    dispatch = build(names, handlers)
    for name, handler in zip(names, handlers, strict=True):
        assert dispatch(lookup.runtime_copy(name)) is handler
    with pytest.raises(KeyError):
        dispatch("not_a_provider")


def test_ifelif_source_is_one_comparison_per_name_in_order() -> None:
    source = lookup.ifelif_source(["alpha", "beta", "gamma"])
    branches = [line.strip() for line in source.splitlines() if "provider ==" in line]
    assert branches == [
        "if provider == 'alpha':",
        "elif provider == 'beta':",
        "elif provider == 'gamma':",
    ]


def test_runtime_copy_is_an_equal_new_object() -> None:
    name = "provider_3"
    copy = lookup.runtime_copy(name)
    assert copy == name
    assert copy is not name


def test_ifelif_resolver_does_the_real_paths_job() -> None:
    names = lookup.provider_names(25)
    registry = resolve.registry_of(names)
    real = resolve.real_resolver(registry)
    chain = resolve.ifelif_resolver(registry.adapters)
    for model in resolve.model_strings(names):
        assert chain(model) == real(model)
        adapter, model_name = real(model)
        assert adapter is registry.adapters[model.partition("/")[0]]
        assert model_name == resolve.MODEL
    for resolver in (real, chain):
        with pytest.raises(errors.ProviderNotFoundError):
            resolver("nobody/bench-model")
        with pytest.raises(errors.InvalidRequestError):
            resolver("  ")


# -- the verdicts -------------------------------------------------------------


def flat(ns: float) -> Summary:
    return Summary(ns, ns, ns, 1)


def lookup_row(n: int, dict_ns: float, avg_ns: float, worst_ns: float) -> lookup.LookupRow:
    return lookup.LookupRow(
        n=n,
        dict_avg=flat(dict_ns),
        dict_worst=flat(dict_ns),
        ifelif_avg=flat(avg_ns),
        ifelif_first=flat(dict_ns),
        ifelif_middle=flat(avg_ns),
        ifelif_worst=flat(worst_ns),
        call_avg=flat(20),
        call_single=flat(20),
    )


@pytest.mark.parametrize(
    ("avg_ns", "worst_ns", "verdict"),
    [
        (240, 470, "does not hold"),
        (960, 1880, "bears the claim out"),
        (960, 470, "does not hold"),
    ],
)
def test_claim_verdict_follows_the_measured_speedups(
    avg_ns: float, worst_ns: float, verdict: str
) -> None:
    rows = [lookup_row(10, 40, 80, 120), lookup_row(47, 40, avg_ns, worst_ns)]
    text = analysis.claim_verdict(rows)
    assert verdict in text
    assert f"measured {avg_ns / 40:.1f}x average and {worst_ns / 40:.1f}x worst case" in text


def test_claim_verdict_says_when_n47_was_not_measured() -> None:
    assert "not tested" in analysis.claim_verdict([lookup_row(10, 40, 80, 120)])


def overhead_row(target: str, variant: str, concurrent_rate: float) -> OverheadRow:
    return OverheadRow(target, variant, flat(100), 1000, concurrent_rate, flat(100))


def _goal_rows(
    over_us: float, hit_us: float, share: float, times: float
) -> tuple[list[OverheadRow], list[OverheadRow]]:
    def row(target: str, variant: str, us: float, rate: float) -> OverheadRow:
        return OverheadRow(target, variant, flat(us), 1000, rate, flat(us))

    ours = [
        row("own", SESSION, 300, 10_000),
        row("own", DEFAULT, 300 * times, 10_000 * share),
    ]
    rows = [
        row("mock", RAW, 100, 1),
        row("mock", DEFAULT, 100 + over_us, 1),
        row("mock", "cache hit", hit_us, 1),
        *ours,
    ]
    return rows, ours


@pytest.mark.parametrize(
    ("over_us", "hit_us", "share", "times", "verdicts"),
    [
        (49.0, 19.0, 0.6, 1.4, ["met"] * 6),
        (51.0, 21.0, 0.4, 1.6, ["missed"] * 6),
        (50.0, 20.0, 0.5, 1.5, ["met"] * 6),  # at the limit is within it
    ],
)
def test_each_target_is_met_or_missed_by_its_limit(
    over_us: float, hit_us: float, share: float, times: float, verdicts: list[str]
) -> None:
    rows, short = _goal_rows(over_us, hit_us, share, times)
    results = empty_results(overhead=rows, short_streams=short)
    goals = analysis.goals(results)
    assert [goal.verdict for goal in goals[:6]] == verdicts
    assert goals[6].verdict == "missed"  # litellm not in the run
    assert f"{share:.0%}" in goals[2].measured and f"{times:.2f}x" in goals[3].measured


def empty_results(**changes: Any) -> run_module.Results:
    """A benchmark run that measured nothing (``changes`` set any field)."""
    empty = run_module.Results(
        scale="tiny",
        rounds=1,
        machine={"litellm": "not installed"},
        lookup=[],
        resolve=[],
        overhead=[],
        streaming=[],
        import_ms={},
        skipped=[],
        seconds=0.0,
        default_stack="",
    )
    return attrs.evolve(empty, **changes)


@pytest.mark.parametrize(
    ("path", "name", "component"),
    [
        ("/x/site-packages/aiohttp/client.py", "_request", "aiohttp"),
        ("/x/site-packages/httpx/_models.py", "read", "httpx"),
        ("/repo/pipeline/_dispatch.py", "__call__", "dispatchline pipeline/"),
        ("/repo/middlewares/cache/_key.py", "cache_key", "dispatchline middlewares/"),
        ("/usr/lib/python3.11/asyncio/base_events.py", "_run_once", "asyncio (event loop)"),
        ("/usr/lib/python3.11/json/encoder.py", "encode", "json"),
        ("~", "<method 'poll' of 'select.epoll' objects>", breakdown.WAITING),
        ("~", "<method 'send' of '_socket.socket' objects>", "socket syscalls"),
        ("~", "<built-in method builtins.isinstance>", "C calls (builtins)"),
    ],
)
def test_the_profile_groups_functions_by_where_they_live(
    path: str, name: str, component: str
) -> None:
    assert breakdown.component(path, name) == component


@pytest.mark.parametrize(
    ("httpx_rate", "aiohttp_rate", "verdict"),
    [
        (300, 10_000, "it holds on this machine"),
        (300, 1_200, "the direction holds, the size does not"),
        (300, 320, "it does not hold"),
    ],
)
def test_transport_verdict_and_fractions(
    httpx_rate: float, aiohttp_rate: float, verdict: str
) -> None:
    rows = [
        overhead_row("httpx", RAW, httpx_rate),
        overhead_row("httpx", DEFAULT, httpx_rate / 2),
        overhead_row("aiohttp", RAW, aiohttp_rate),
        overhead_row("aiohttp", DEFAULT, aiohttp_rate / 4),
    ]
    assert verdict in analysis.transport_verdict(rows)
    fractions = {row.target: row.fraction for row in analysis.transports(rows)}
    assert fractions == {"httpx": 0.5, "aiohttp": 0.25}


async def test_interleaved_runs_every_variant_once_per_round() -> None:
    seen: list[int] = []

    async def run(x: int) -> int:
        seen.append(x)
        return x * 10

    assert await interleaved({"a": 1, "b": 2}, 3, run) == {"a": [10, 10, 10], "b": [20, 20, 20]}
    assert [sorted(seen[i : i + 2]) for i in (0, 2, 4)] == [[1, 2]] * 3


# -- fresh-process rounds --------------------------------------------------


def test_a_lookup_round_times_every_case() -> None:
    samples = lookup.measure({"sizes": [5, 10], "repeats": 2, "min_seconds": 0.0})
    expected = {
        f"{n}/{strategy}/{case}"
        for n in (5, 10)
        for strategy in ("dict", "ifelif", "call")
        for case in ("average", "first", "middle", "last")
    }
    assert set(samples) == expected
    assert all(len(values) == 1 and values[0] > 0 for values in samples.values())
    rows = lookup.rows(samples, (5, 10))
    assert [row.n for row in rows] == [5, 10]


def test_rounds_run_in_fresh_processes_and_pool_their_samples() -> None:
    rounds: list[None] = []
    samples = run_rounds(
        "resolve",
        {"sizes": [5], "repeats": 3, "min_seconds": 0.0},
        2,
        lambda: rounds.append(None),
    )
    assert len(rounds) == 2
    assert set(samples) == {"5/real/average", "5/real/last", "5/ifelif/average", "5/ifelif/last"}
    assert all(len(values) == 2 for values in samples.values())  # one per round


def test_a_failing_round_raises_with_the_workers_error() -> None:
    with pytest.raises(RuntimeError, match="worker 'nonsense' failed"):
        run_rounds("nonsense", {}, 1)


# -- the targets -----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def loopback(server: LoopbackServer) -> Target:
    return Target("httpx", "loopback", server.base_url, httpx.AsyncClient)


async def test_loopback_server_answers_an_openai_chat_request(server: LoopbackServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"{server.base_url}/chat/completions",
            json={"model": "bench-model", "messages": HI},
        )
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] == 10


@pytest.mark.parametrize(("model", "count"), [("bench-model", 100), ("bench-short", 5)])
async def test_loopback_server_streams_its_chunks_then_done(
    server: LoopbackServer, model: str, count: int
) -> None:
    body = {"model": model, "messages": HI, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{server.base_url}/chat/completions", json=body) as reply,
    ):
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] async for line in reply.aiter_lines() if line.startswith("data: ")]
    assert len(events) == count + 1
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("where", ["mock", "loopback"])
async def test_pipeline_reaches_each_target_with_the_key_given_per_call(
    where: str, server: LoopbackServer
) -> None:
    target = mock_target() if where == "mock" else loopback(server)
    async with (
        target.client() as client,
        Pipeline([], registry=target.registry(), http_client=client) as pipe,
    ):
        reply = await pipe.acompletion(MODEL, HI, api_key=API_KEY)
        stream = await pipe.acompletion(MODEL, HI, stream=True, api_key=API_KEY)
        async with stream:
            chunks = [chunk async for chunk in stream]
    assert isinstance(reply, ChatResponse)
    assert reply.choices[0].message.content == "A short benchmark reply."
    assert len(chunks) == STREAM_CHUNKS
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_variants_are_each_timed_over_whole_streams() -> None:
    rows = await measure_stream_target(mock_target(), 2, 2)
    assert [row.variant for row in rows] == ["raw httpx", "Pipeline([])", "Pipeline.default()"]
    for row in rows:
        assert row.total_us.count == 2
        assert row.first_chunk_us.median <= row.total_us.median


# -- the command line and its JSON -----------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, int]:
    """``python -m benchmarks --quick --json PATH`` with the quick scale shrunk to a smoke test."""
    folder = tmp_path_factory.mktemp("bench")
    advanced: list[str] = []
    real_run = run_module.run

    def counting_run(scale: Scale, advance: Any) -> Any:
        def both(done: str) -> None:
            advanced.append(done)
            advance(done)

        return real_run(scale, both)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "QUICK", TINY)
        patch.setattr(cli, "run", counting_run)
        code = cli.main(["--quick", "--json", str(folder / "out.json"), "--results", str(folder)])
    assert code == 0
    data = json.loads((folder / "out.json").read_text(encoding="utf-8"))
    return data, folder, len(advanced)


def test_json_has_the_documented_keys(tiny_run: tuple[dict[str, Any], Path, int]) -> None:
    data, _, _ = tiny_run
    assert [row["n"] for row in data["lookup"]] == [5, 47]
    for row in data["lookup"]:
        for key in ("dict_ns", "ifelif_avg_ns", "ifelif_worst_ns"):
            assert isinstance(row[key], float) and row[key] > 0
    assert [row["n"] for row in data["resolve"]] == [5, 47]
    for row in data["resolve"]:
        assert row["ns"] > 0 and row["ifelif_ns"] > 0
    assert data["claim"]["n"] == 47
    assert data["claim"]["measured_avg_speedup"] > 0
    assert set(data["import_ms"]) >= {"bare", "httpx", "dispatchline", "dispatchline_above_bare"}


def test_json_overhead_covers_every_target_and_variant(
    tiny_run: tuple[dict[str, Any], Path, int],
) -> None:
    data, _, _ = tiny_run
    measured = {(row["target"], row["variant"]) for row in data["overhead"]}
    for target in ("mock", "httpx", "own", "aiohttp"):
        for variant in ("raw httpx", "Pipeline([])", "Pipeline.default()"):
            assert (target, variant) in measured
    assert ("own", "aiohttp.ClientSession") in measured
    for row in data["overhead"]:
        assert row["median_us"] > 0 and row["req_per_s"] > 0 and row["concurrent_req_per_s"] > 0
    # The cache hit is measured, or said to be skipped, never silently absent.
    assert ("mock", "cache hit") in measured or any("cache hit" in s for s in data["skipped"])
    assert [row["target"] for row in data["transports"]] == ["httpx", "own", "aiohttp"]
    assert {row["target"] for row in data["streaming"]} == {"mock", "httpx", "aiohttp"}
    assert [row["variant"] for row in data["short_streams"]] == [
        "aiohttp.ClientSession",
        "raw httpx",
        "Pipeline([])",
        "Pipeline.default()",
    ]
    for row in data["short_streams"]:
        assert row["median_us"] > 0 and row["concurrent_req_per_s"] > 0


def test_json_states_every_target_with_a_verdict(
    tiny_run: tuple[dict[str, Any], Path, int],
) -> None:
    data, _, _ = tiny_run
    goals = data["goals"]
    assert len(goals) == 7
    assert all(goal["verdict"] in ("met", "missed", "not measured") for goal in goals)
    assert all(goal["verdict"] != "not measured" for goal in goals[:6])  # all measured
    assert {row["layer"] for row in data["layers"]} == {
        "Logging",
        "Cache",
        "Retry",
        "ErrorMapping",
        "Callbacks",
        "Fallback",
        "Cache (hit)",
    }
    profiled = {row["variant"] for row in data["breakdown"]}
    assert profiled == {
        "aiohttp.ClientSession, whole",
        "Pipeline.default(), whole",
        "aiohttp.ClientSession, stream",
        "Pipeline.default(), stream",
    }
    ours = {
        row["component"]
        for row in data["breakdown"]
        if row["variant"] == "Pipeline.default(), whole"
    }
    assert {"aiohttp", "httpx", "dispatchline pipeline/", "dispatchline middlewares/"} <= ours


def test_run_writes_results_and_plot_and_the_bar_completes(
    tiny_run: tuple[dict[str, Any], Path, int],
) -> None:
    data, folder, advanced = tiny_run
    assert json.loads((folder / "results.json").read_text(encoding="utf-8")) == data
    assert (folder / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    assert advanced == steps(TINY)


def test_record_refuses_a_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse(["--quick", "--record"])
    assert "full runs only" in capsys.readouterr().err


def test_json_has_the_shared_state_section_or_says_why_not(
    tiny_run: tuple[dict[str, Any], Path, int],
) -> None:
    data, _, _ = tiny_run
    shared = data["shared_state"]
    if shared is None:
        assert any(s.startswith("shared state: skipped") for s in data["skipped"])
        return
    added = shared["added"]
    assert set(added) == {
        "RedisCache hit",
        "RedisCache miss",
        "RedisState per request",
        "Budget on Redis per request",
        "Stats on Redis per request",
        "limit check (acquire)",
    }
    # A budget checks before and spends after; Stats sends in the background (at
    # most one send a second, whatever the requests: none on a request's path).
    assert added["Budget on Redis per request"]["round_trips"] == 2.0
    assert added["Stats on Redis per request"]["round_trips"] < 0.05
    # Counted, not assumed: a hit is one round trip, a miss two, a routed request two.
    assert added["RedisCache hit"]["round_trips"] == 1.0
    assert added["RedisCache miss"]["round_trips"] == 2.0
    assert added["RedisState per request"]["round_trips"] == 2.0
    for limit in ("rpm", "tpm"):
        accuracy = shared["accuracy"][limit]
        assert 0.95 * accuracy["allowed"] <= accuracy["admitted"] <= accuracy["allowed"]
