"""The gateway app in process (httpx.ASGITransport), on asyncio and on trio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import anyio
import attrs
import httpx
import pytest

from gateway import create_app, parse_config
from gateway._auth import Keyring, VirtualKey, digest
from gateway._errors import answer
from middlewares import ErrorMapping
from pipeline import Pipeline, errors
from providers import ProviderRegistry, Script, mock_provider
from tests._scripted_replies import chunk_event

HI = [{"role": "user", "content": "hi"}]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


def _pipeline(handler: Callable[..., Any]) -> Pipeline:
    return Pipeline([ErrorMapping()], registry=ProviderRegistry([mock_provider("up", handler)]))


def _sse(events: list[dict[str, Any]], done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


class _Pieces(httpx.AsyncByteStream):
    """A body that arrives in separate reads, ``pause`` seconds apart (a plain
    iterator, not a generator: closed early it leaves nothing to finalise)."""

    def __init__(self, *parts: bytes, pause: float = 0.0) -> None:
        self._parts = list(parts)
        self._pause = pause
        self._first = True

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        if not self._parts:
            raise StopAsyncIteration
        if not self._first:
            await anyio.sleep(self._pause)
        self._first = False
        return self._parts.pop(0)

    async def aclose(self) -> None:
        self._parts = []


@pytest.mark.anyio
async def test_bodies_are_checked_before_any_upstream_call() -> None:
    script = Script()  # no replies: any upstream call would fail the test
    async with serving(create_app(_pipeline(script))) as client:
        cases = [
            (b"{not json", None),
            (b"[1, 2]", None),
            (json.dumps({"messages": HI}).encode(), "model"),
            (json.dumps({"model": "", "messages": HI}).encode(), "model"),
            (json.dumps({"model": "up/m", "messages": "hi"}).encode(), "messages"),
            (json.dumps({"model": "up/m", "messages": HI, "stream": "yes"}).encode(), "stream"),
            (
                json.dumps({"model": "up/m", "messages": HI, "api_base": "http://x"}).encode(),
                "api_base",
            ),
            (json.dumps({"model": "up/m", "messages": HI, "temperature": "hot"}).encode(), None),
            (json.dumps({"model": "up/m", "messages": [{"content": "no role"}]}).encode(), None),
        ]
        for content, param in cases:
            response = await client.post("/v1/chat/completions", content=content)
            assert response.status_code == 400, content
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["param"] == param
            assert response.headers["x-request-id"].startswith("req_")
        embed = await client.post("/embeddings", json={"model": "up/m"})
        assert embed.status_code == 400 and embed.json()["error"]["param"] == "input"
    assert script.requests == []


@pytest.mark.anyio
async def test_a_stream_error_before_the_first_chunk_is_a_status_and_after_it_an_event() -> None:
    early = httpx.Response(
        429, json={"error": {"message": "slow down", "code": None}}, headers={"retry-after": "2"}
    )
    late = httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        stream=_Pieces(
            _sse([chunk_event("a")], False), _sse([{"error": {"message": "boom"}}], False)
        ),
    )
    whole = httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=_sse([chunk_event("a"), chunk_event("b"), chunk_event("", "stop")]),
    )
    script = Script(early, late, whole)
    body = {"model": "up/m", "messages": HI, "stream": True}
    async with serving(create_app(_pipeline(script))) as client:
        first = await client.post("/v1/chat/completions", json=body)
        assert first.status_code == 429
        assert first.headers["content-type"] == "application/json"
        assert first.headers["retry-after"] == "2" and first.headers["retry-after-ms"] == "2000"
        assert first.json()["error"]["message"].endswith("slow down")

        second = await client.post("/v1/chat/completions", json=body)
        assert second.status_code == 200
        events = [e for e in second.text.split("\n\n") if e]
        assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"] == {
            "content": "a"
        }
        assert json.loads(events[-1].removeprefix("data: "))["error"]["message"].endswith("boom")
        assert "[DONE]" not in second.text

        third = await client.post("/v1/chat/completions", json=body)
        assert third.text.endswith("data: [DONE]\n\n")
        assert third.headers["content-type"].startswith("text/event-stream")


@pytest.mark.anyio
async def test_idle_streams_get_comment_pings() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        body = _Pieces(
            _sse([chunk_event("a")], done=False),
            _sse([chunk_event("b"), chunk_event("", "stop")]),
            pause=0.35,
        )
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    app = create_app(_pipeline(slow))
    async with serving(app) as client:
        generation = app.state.gateway.current
        generation.server = attrs.evolve(generation.server, ping_interval=0.1)
        response = await client.post(
            "/v1/chat/completions", json={"model": "up/m", "messages": HI, "stream": True}
        )
    assert ": ping\n\n" in response.text
    assert response.text.endswith("data: [DONE]\n\n")


@pytest.mark.anyio
async def test_auth_is_one_generic_401_and_virtual_keys_are_limited(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {
                "master_key": "sk-master-1",
                "keys": [{"name": "a", "key": "sk-team-a", "models": ["mock/*"], "rpm": 2}],
            },
            "middlewares": {"logging": False},
        }
    )
    async with serving(create_app(config=config)) as client:
        denied = [
            await client.get("/v1/models"),
            await client.get("/v1/models", headers={"authorization": "Bearer sk-nope"}),
            await client.get("/v1/models", headers={"authorization": "Basic sk-master-1"}),
            await client.get("/v1/models", headers={"authorization": "Bearer "}),
        ]
        assert {r.status_code for r in denied} == {401}
        assert len({r.content for r in denied}) == 1  # the same body, whatever failed
        team = {"authorization": "Bearer sk-team-a"}
        body = {"model": "mock/echo", "messages": HI}
        assert (await client.post("/chat/completions", json=body, headers=team)).status_code == 200
        other = await client.post(
            "/chat/completions", json={**body, "model": "openai/x"}, headers=team
        )
        assert other.status_code == 403
        assert (await client.post("/chat/completions", json=body, headers=team)).status_code == 200
        limited = await client.post("/chat/completions", json=body, headers=team)
        assert limited.status_code == 429 and float(limited.headers["retry-after"]) >= 1
        reload = await client.post("/admin/reload", headers=team)
        assert reload.status_code == 403
        master = {"authorization": "Bearer sk-master-1"}
        refused = await client.post("/admin/reload", headers=master)
        assert refused.status_code == 409  # built from data, not a file: nothing to reload


@pytest.mark.anyio
async def test_reload_from_a_file_in_process(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"providers": {"mock": {"models": ["one"]}}}))
    app = create_app(config=path)
    async with serving(app) as client:
        assert [m["id"] for m in (await client.get("/models")).json()["data"]] == ["mock/one"]
        old = app.state.gateway.current
        path.write_text(json.dumps({"providers": {"mock": {"models": ["two"]}}}))
        assert (await client.post("/admin/reload")).status_code == 200
        assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["mock/two"]
        assert old.retired
        with anyio.fail_after(5):  # closed once its last request (the reload itself) ended
            await old.closed.wait()
        path.write_text("{")
        bad = await client.post("/admin/reload")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        assert (await client.get("/v1/models")).json()["data"][0]["id"] == "mock/two"


@pytest.mark.anyio
async def test_every_openai_route_and_the_seed_routes_on_the_mock_provider() -> None:
    config = parse_config({"middlewares": {"logging": False}})
    async with serving(create_app(config=config)) as client:
        image = await client.post("/v1/images/generations", json={"model": "mock/i", "prompt": "a"})
        assert image.json()["data"][0]["url"]
        speech = await client.post(
            "/v1/audio/speech", json={"model": "mock/t", "input": "hi", "voice": "alloy"}
        )
        assert speech.content.startswith(b"MOCKAUDIO")
        heard = await client.post(
            "/v1/audio/transcriptions",
            files={"file": ("clip.wav", b"RIFF0000WAVE", "audio/wav")},
            data={"model": "mock/w", "temperature": "0.2"},
        )
        assert heard.json() == {"text": "mock transcription of clip.wav"}
        seed = await client.post(
            "/api/v1/chat/completions", json={"model": "mock/echo", "messages": HI}
        )
        assert seed.json()["data"]["content"] == "echo: hi"
        missing = await client.post("/api/v1/chat/completions", json={"model": "mock/echo"})
        assert missing.status_code == 400 and missing.json() == {
            "success": False,
            "error": "at least one message is required",
        }
        assert (await client.get("/metrics")).status_code == 404  # no Stats middleware here
        assert (await client.get("/nowhere")).json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("error", "status", "code", "headers"),
    [
        (errors.InvalidRequestError("bad"), 400, "invalid_request", {"x-should-retry": "false"}),
        (errors.ProviderNotFoundError("no"), 404, "model_not_found", {"x-should-retry": "false"}),
        (errors.ContextWindowExceededError("long"), 400, "context_length_exceeded", {}),
        (errors.AuthenticationError("key"), 401, "invalid_api_key", {}),
        (errors.PermissionDeniedError("no"), 403, "permission_denied", {}),
        (errors.NotFoundError("gone"), 404, "model_not_found", {}),
        (errors.BadRequestError("dup", status_code=409), 409, "bad_request", {}),
        (errors.BadRequestError("shape", status_code=422), 422, "bad_request", {}),
        (
            errors.RateLimitError("slow", retry_after=1.5),
            429,
            "rate_limit_exceeded",
            {"retry-after": "2", "retry-after-ms": "1500"},
        ),
        (
            errors.RateLimitError("quota", retryable=False, code="insufficient_quota"),
            429,
            "insufficient_quota",
            {"x-should-retry": "false"},
        ),
        (
            errors.ServiceUnavailableError("busy", retry_after=3),
            503,
            "service_unavailable",
            {"retry-after": "3"},
        ),
        (errors.InternalServerError("oops"), 502, "upstream_error", {}),
        (errors.TimeoutError("late"), 504, "upstream_timeout", {}),
        (errors.APIConnectionError("down"), 502, "upstream_connection_error", {}),
        (errors.ProviderResponseError("junk"), 502, "bad_upstream_response", {}),
        (
            errors.FallbackError("all failed", [errors.RateLimitError("a", retry_after=1)]),
            429,
            "rate_limit_exceeded",
            {"retry-after": "1"},
        ),
    ],
)
def test_each_dispatch_error_maps_to_openais_status_and_body(
    error: errors.DispatchError, status: int, code: str, headers: dict[str, str]
) -> None:
    found = answer(error)
    assert found.status == status
    assert found.body["error"]["code"] == code
    assert set(found.body["error"]) == {"message", "type", "param", "code"}
    assert headers.items() <= found.headers.items()


def test_an_unexpected_exception_is_a_bare_500() -> None:
    found = answer(KeyError("api_key=sk-secret-123456"))
    assert found.status == 500
    assert "sk-secret" not in json.dumps(found.body) and "KeyError" not in json.dumps(found.body)


def test_keys_are_compared_by_digest_and_budgets_refuse_once_spent() -> None:
    key = VirtualKey(name="k", sha256=digest("sk-k"), budget=1.0)
    ring = Keyring("sk-master", [key])
    assert ring.authenticate("Bearer sk-k") is key
    assert ring.authenticate("bearer sk-master").admin  # type: ignore[union-attr]
    assert ring.authenticate("Bearer sk-kk") is None
    ring.admit(key, "any/model")
    ring.charge(key, 0.6)
    ring.admit(key, "any/model")
    ring.charge(key, 0.6)
    with pytest.raises(errors.DispatchError) as caught:
        ring.admit(key, "any/model")
    assert answer(caught.value).status == 429
    assert answer(caught.value).headers["x-should-retry"] == "false"


class _Groups:
    """Stands in for the Router: the gateway lists a routing layer's group names."""

    groups: ClassVar[dict[str, list[str]]] = {"chat-fast": ["up/m"]}

    async def __call__(self, request: Any, call_next: Any) -> Any:
        return await call_next(request)


@pytest.mark.anyio
async def test_router_groups_and_stats_are_found_in_the_pipeline() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from middlewares import Stats

    stats = Stats()
    layers: list[Any] = [_Groups(), stats, ErrorMapping()]
    pipe = Pipeline(layers, registry=ProviderRegistry([mock_provider("up")]))
    async with serving(create_app(pipe)) as client:
        models = (await client.get("/v1/models")).json()["data"]
        assert {"id": "chat-fast", "object": "model", "created": 0, "owned_by": "dispatchline"} in (
            models
        )
        chat = {"model": "up/m", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        counts = {
            s.labels["outcome"]: s.value
            for s in families["dispatchline_requests"].samples
            if s.labels["provider"] == "up" and s.labels["model"] == "m"
        }
        assert counts == {"success": 1, "failure": 0, "cancelled": 0}
        payload = (await client.get("/api/v1/stats")).json()
        assert payload["targets"]["up/m"]["requests"] == 1
        assert payload["targets"] == stats.snapshot().to_dict()["targets"]
        assert payload["total_requests"] >= 1


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    config = parse_config({"server": {"max_body_bytes": 2000}, "middlewares": {"logging": False}})
    large = json.dumps({"model": "mock/echo", "messages": HI, "user": "x" * 5000}).encode()
    async with serving(create_app(config=config)) as client:
        refusals = [
            # content-length says so: refused before anything is read
            await client.post("/v1/chat/completions", content=large),
            # chunked, no content-length: refused once the bytes read pass 2000
            await client.post("/v1/chat/completions", content=_Pieces(large[:1500], large[1500:])),
            await client.post(
                "/v1/audio/transcriptions",
                files={"file": ("clip.wav", b"RIFF" + b"0" * 4000, "audio/wav")},
                data={"model": "mock/w"},
            ),
        ]
        for refused in refusals:
            assert refused.status_code == 413, refused.text
            error = refused.json()["error"]
            assert error["code"] == "request_too_large" and "(2000 bytes)" in error["message"]
            assert refused.headers["x-request-id"]
        ok = await client.post("/v1/chat/completions", json={"model": "mock/echo", "messages": HI})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "echo: hi"


@pytest.mark.anyio
async def test_the_request_id_is_on_the_pipelines_log_lines() -> None:
    from structlog.contextvars import merge_contextvars
    from structlog.testing import capture_logs

    config = parse_config({"middlewares": {"cache": False}})  # Logging on, as by default
    body = {"model": "mock/echo", "messages": HI}
    async with serving(create_app(config=config)) as client:
        with capture_logs(processors=[merge_contextvars]) as logs:
            whole = await client.post(
                "/v1/chat/completions", json=body, headers={"x-request-id": "req-whole-1"}
            )
            streamed = await client.post(
                "/v1/chat/completions",
                json={**body, "stream": True},
                headers={"x-request-id": "req-stream-2"},
            )
            chosen = await client.post("/v1/chat/completions", json=body)
    assert whole.status_code == streamed.status_code == chosen.status_code == 200
    events = [e for e in logs if e["event"] == "llm.request"]
    assert [(e["x_request_id"], e["stream"]) for e in events] == [
        ("req-whole-1", False),
        ("req-stream-2", True),
        (chosen.headers["x-request-id"], False),
    ]
