"""``dispatchline serve`` in a real process, driven by the official openai SDK.

One gateway and one fake OpenAI upstream (replaying recorded exchanges) serve
the whole module: chat, streams, embeddings, models, every error status as the
SDK's own exception, a stream broken upstream, retry-after, disconnects,
auth, and the seed's routes over plain httpx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests._fake_openai import UPSTREAM_KEY, FakeOpenAI
from tests._gateway_process import GatewayProcess
from tests.conftest import load_recorded

MASTER = "sk-master-test-key-000"
VIRTUAL = "sk-virtual-test-key-111"

CONFIG = """
[server]
master_key = "{master}"

[[server.keys]]
name = "team-a"
key = "${{TEAM_A_KEY}}"
models = ["openai/gpt-*", "openai/limited-*"]

[providers.openai]
api_base = "{upstream}"
api_key = "{upstream_key}"
models = ["gpt-4o-mini"]

[middlewares]
retry = false   # errors reach the client as the upstream sent them
cache = false
"""

HI: Any = [{"role": "user", "content": "What is 4200 + 42?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder: Path = tmp_path_factory.mktemp("gateway")
    path = folder / "dispatchline.toml"
    path.write_text(
        CONFIG.format(master=MASTER, upstream=upstream.base_url, upstream_key=UPSTREAM_KEY)
    )
    with GatewayProcess(path, env={"TEAM_A_KEY": VIRTUAL}) as process:
        yield process
        log = process.log()
    assert UPSTREAM_KEY not in log  # the provider key never reaches a log line


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=MASTER, max_retries=0)


def _recorded_content() -> str:
    body = load_recorded("openai/chat_basic.json")["response"]["body"]
    return str(body["choices"][0]["message"]["content"])


def _recorded_stream_text() -> str:
    raw = load_recorded("openai/chat_stream_text_include_usage.json")["response"]["body"]
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e.startswith("data: {")]
    chunks = [json.loads(e) for e in events]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_chat_with_the_sync_sdk(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    reply = client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert reply.choices[0].message.content == _recorded_content()
    assert reply.usage is not None and reply.usage.total_tokens == 28
    assert reply._request_id and reply._request_id.startswith("req_")
    sent = upstream.seen("gpt-4o")[-1]
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the gateway's key, not the caller's
    assert UPSTREAM_KEY not in reply.model_dump_json()


@pytest.mark.anyio
async def test_chat_and_embeddings_with_the_async_sdk(gateway: GatewayProcess) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=MASTER) as client:
        reply = await client.chat.completions.create(model="openai/gpt-4o", messages=HI)
        assert reply.choices[0].message.content == _recorded_content()
        vectors = await client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    recorded = load_recorded("openai/embeddings_float.json")["response"]["body"]["data"][0]
    # the SDK asks for base64 by default; the gateway encodes float32 and the SDK decodes it
    assert vectors.data[0].embedding == pytest.approx(recorded["embedding"], rel=1e-6)


def test_streamed_chat(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        text += [c.delta.content or "" for c in chunk.choices]
        usage = chunk.usage or usage
    assert "".join(text) == _recorded_stream_text()
    assert usage is not None and usage.total_tokens > 0


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o-mini" in ids
    assert client.models.retrieve("openai/gpt-4o-mini").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/nothing-like-it")


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        (400, openai.BadRequestError, "unsupported_value"),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, "status_403"),
        (404, openai.NotFoundError, "model_not_found"),
        (409, openai.ConflictError, "status_409"),
        (422, openai.UnprocessableEntityError, "status_422"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, "status_500"),
        (503, openai.InternalServerError, "overloaded"),
    ],
)
def test_each_upstream_error_arrives_as_the_sdks_exception(
    client: openai.OpenAI, status: int, exception: type[openai.APIStatusError], code: str
) -> None:
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model=f"openai/error-{status}", messages=HI)
    error = caught.value
    assert error.code == code
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert isinstance(error.body, dict) and error.body["message"]
    assert UPSTREAM_KEY not in str(error.body)


def test_an_error_before_any_upstream_call_is_a_400(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="openai/gpt-4o", messages=[], temperature=9)
    assert caught.value.param == "messages"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nosuch/model", messages=HI)
    assert len(upstream.requests) == before


def test_a_stream_broken_upstream_raises_api_error_from_the_sdk_stream(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(model="openai/break", messages=HI, stream=True)
    chunks = iter(stream)
    assert next(chunks).choices  # the failure comes after the first chunk
    with pytest.raises(openai.APIError) as caught:
        list(chunks)
    assert not isinstance(caught.value, openai.APIStatusError)


def test_the_sdk_honours_retry_after(gateway: GatewayProcess, upstream: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER, max_retries=2)
    start = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="openai/limited-a", messages=HI)
    assert raw.parse().choices[0].message.content == _recorded_content()
    assert time.monotonic() - start >= 0.95  # waited the upstream's retry-after: 1
    assert len(upstream.seen("limited-a")) == 2
    limited = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "openai/error-429", "messages": HI},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert limited.headers["retry-after"] == "0" and limited.headers["retry-after-ms"] == "0"


def test_a_client_disconnect_closes_the_upstream_stream(
    gateway: GatewayProcess, upstream: FakeOpenAI
) -> None:
    body = {"model": "openai/endless", "messages": HI, "stream": True}
    headers = {"authorization": f"Bearer {MASTER}"}
    with (
        httpx.Client() as http,
        http.stream(
            "POST", gateway.base_url + "/chat/completions", json=body, headers=headers
        ) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        gone = time.monotonic()
    while "endless" not in upstream.closed and time.monotonic() - gone < 5:
        time.sleep(0.01)
    assert upstream.closed["endless"] - gone < 1.0


def _post(gateway: GatewayProcess, key: str | None, model: str = "openai/gpt-4o") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": model, "messages": HI},
        headers=headers,
    )


def test_auth(gateway: GatewayProcess) -> None:
    missing, wrong = _post(gateway, None), _post(gateway, "sk-wrong")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == wrong.json()  # one body, no hint which part failed
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0).models.list()
    team = openai.OpenAI(base_url=gateway.base_url, api_key=VIRTUAL, max_retries=0)
    assert team.chat.completions.create(model="openai/gpt-4o", messages=HI).choices
    with pytest.raises(openai.PermissionDeniedError) as caught:
        team.chat.completions.create(model="openai/o3-mini", messages=HI)
    assert caught.value.code == "model_not_allowed"
    assert [m.id for m in team.models.list()] == ["openai/gpt-4o-mini"]
    assert _post(gateway, MASTER, "openai/o3-mini").status_code == 200  # the master key: any model
    assert httpx.get(gateway.url + "/health/readiness").status_code == 200  # probes: no key


def test_the_seed_routes_over_plain_httpx(gateway: GatewayProcess) -> None:
    auth = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=gateway.url + "/api/v1", headers=auth) as http:
        health = http.get("/health").json()
        assert health["status"] == "healthy"
        assert {"name": "openai", "enabled": True} in health["vendors"]
        assert http.get("/vendors").json()["vendors"] == health["vendors"]
        body = {"model": "gpt-4o", "messages": HI, "vendor": "openai", "max_tokens": 50}
        done = http.post("/chat/completions", json=body).json()
        assert done["success"] is True
        assert done["data"]["content"] == _recorded_content()
        assert done["data"]["vendor"] == "openai" and done["data"]["usage"]["total_tokens"] == 28
        assert done["stats"]["total_requests"] >= 1
        tested = http.post("/test/vendor", json={**body, "stream": True}).json()
        assert tested["success"] is True and tested["data"]["content"] == _recorded_stream_text()
        unknown = http.post("/test/vendor", json={**body, "vendor": "nobody"})
        assert unknown.status_code == 400 and unknown.json()["success"] is False
        failed = http.post("/chat/completions", json={**body, "model": "error-429"})
        assert failed.status_code == 429 and failed.json()["success"] is False
        with http.stream("POST", "/chat/completions/stream", json=body) as streamed:
            text = [line.removeprefix("data: ") for line in streamed.iter_lines() if line]
        assert "".join(text) == _recorded_stream_text()
        stats = http.get("/stats").json()
        assert stats["total_requests"] >= 4 and stats["failed_requests"] >= 1
