"""Logprobs from an OpenAI-format provider reach the caller, whole and streamed.

The OpenAI-style adapters send ``logprobs``/``top_logprobs`` as given, so the
``choices[i].logprobs`` the server answers with must come back: on the
response, on each stream chunk, in ``to_dict()`` (valid for the openai SDK's
types), in the response a stream adds up to, and from the cache. Bodies are
OpenAI's documented shape (no recording asks for logprobs); native adapters
refuse the parameter before any I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from middlewares import Cache, Callbacks
from middlewares.cache import MemoryCache
from pipeline import ChatChunk, ChatResponse, Pipeline, StreamAccumulator, errors
from pipeline.adapter import ChunkChoice, Delta
from providers import ProviderRegistry, mock_provider
from providers.anthropic import ANTHROPIC
from providers.cohere import COHERE
from providers.gemini import GEMINI
from providers.ollama import OLLAMA

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]
ASK: dict[str, Any] = {"logprobs": True, "top_logprobs": 2, "temperature": 0}


def token(text: str, logprob: float) -> dict[str, Any]:
    """One entry of OpenAI's ``logprobs.content``, with its top alternatives."""
    return {
        "token": text,
        "logprob": logprob,
        "bytes": list(text.encode()),
        "top_logprobs": [
            {"token": text, "logprob": logprob, "bytes": list(text.encode())},
            {"token": "?", "logprob": -9.5, "bytes": [63]},
        ],
    }


TOKENS = [token("Hello", -0.01), token("!", -0.25)]
WHOLE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": {"content": TOKENS, "refusal": None},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def sse(*chunks: dict[str, Any]) -> bytes:
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return ("".join(events) + "data: [DONE]\n\n").encode()


def chunk(delta: dict[str, Any], logprobs: Any, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }


STREAMED = sse(
    chunk({"role": "assistant", "content": ""}, {"content": [], "refusal": None}),
    chunk({"content": "Hello"}, {"content": [TOKENS[0]], "refusal": None}),
    chunk({"content": "!"}, {"content": [TOKENS[1]], "refusal": None}),
    chunk({}, None, "stop"),
)


class Server:
    """An OpenAI-format server that answers every call with one body, recording what it got."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body.get("stream"):
            return httpx.Response(
                200, content=STREAMED, headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json=WHOLE)


def pipeline(server: Server, *layers: Any) -> Pipeline:
    return Pipeline(list(layers), registry=ProviderRegistry([mock_provider("oai", server)]))


async def test_a_response_carries_the_choice_logprobs() -> None:
    server = Server()
    async with pipeline(server) as pipe:
        reply = await pipe.acompletion("oai/gpt-4o-mini", HI, **ASK)
    assert server.bodies[0]["logprobs"] is True and server.bodies[0]["top_logprobs"] == 2
    assert reply.choices[0].logprobs == {"content": TOKENS, "refusal": None}
    parsed = ChatCompletion.model_validate(reply.to_dict())
    logprobs = parsed.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [t.token for t in logprobs.content] == ["Hello", "!"]
    assert logprobs.content[1].top_logprobs[1].logprob == -9.5


async def test_stream_chunks_carry_their_logprobs_and_add_up() -> None:
    server = Server()
    ended: list[ChatResponse] = []
    callbacks = Callbacks(on_success=lambda request, response: ended.append(response))
    async with pipeline(server, callbacks) as pipe:
        stream = await pipe.acompletion("oai/gpt-4o-mini", HI, stream=True, **ASK)
        async with stream:
            chunks = [piece async for piece in stream]
    assert [c.choices[0].logprobs for c in chunks if c.choices] == [
        {"content": [], "refusal": None},
        {"content": [TOKENS[0]], "refusal": None},
        {"content": [TOKENS[1]], "refusal": None},
        None,
    ]
    for piece in chunks:
        ChatCompletionChunk.model_validate(piece.to_dict())
    parsed = ChatCompletionChunk.model_validate(chunks[1].to_dict())
    assert parsed.choices[0].logprobs is not None
    assert parsed.choices[0].logprobs.content is not None
    assert parsed.choices[0].logprobs.content[0].token == "Hello"
    (whole,) = ended
    assert whole.choices[0].message.content == "Hello!"
    assert whole.choices[0].logprobs == {"content": TOKENS, "refusal": None}
    folded = ChatCompletion.model_validate(whole.to_dict()).choices[0].logprobs
    assert folded is not None and folded.content is not None
    assert [t.token for t in folded.content] == ["Hello", "!"]


def _chunk(index: int, logprobs: dict[str, Any] | None) -> ChatChunk:
    return ChatChunk(
        choices=[ChunkChoice(index=index, delta=Delta(content="x"), logprobs=logprobs)]
    )


async def test_the_accumulator_folds_each_choice_s_token_lists_apart() -> None:
    folder = StreamAccumulator()
    first = {"content": [TOKENS[0]], "refusal": None}
    folder.add(_chunk(0, first))
    folder.add(_chunk(1, {"content": [TOKENS[1]]}))
    folder.add(_chunk(0, {"content": None, "refusal": [TOKENS[1]]}))
    folder.add(_chunk(0, {"content": [TOKENS[1]], "refusal": None}))
    folder.add(_chunk(1, None))
    choices = folder.response().choices
    assert choices[0].logprobs == {"content": TOKENS, "refusal": [TOKENS[1]]}
    assert choices[1].logprobs == {"content": [TOKENS[1]]}
    assert first == {"content": [TOKENS[0]], "refusal": None}  # a chunk's own lists stay as sent
    assert StreamAccumulator().response().choices == []
    folder = StreamAccumulator()
    folder.add(_chunk(0, None))
    assert folder.response().choices[0].logprobs is None
    assert folder.response().to_dict()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_cache_hit_keeps_the_logprobs(stream: bool) -> None:
    server = Server()

    async def ask(pipe: Pipeline) -> Any:
        if not stream:
            return (await pipe.acompletion("oai/gpt-4o-mini", HI, **ASK)).choices[0].logprobs
        result = await pipe.acompletion("oai/gpt-4o-mini", HI, stream=True, **ASK)
        folder = StreamAccumulator()
        async with result:
            async for piece in result:
                folder.add(piece)
        return folder.response().choices[0].logprobs

    async with pipeline(server, Cache(MemoryCache())) as pipe:
        first, again = await ask(pipe), await ask(pipe)
    assert len(server.bodies) == 1  # the second came from the cache
    assert first == again == {"content": TOKENS, "refusal": None}


async def test_logprobs_that_are_not_an_object_are_a_provider_response_error() -> None:
    bad = {**WHOLE, "choices": [{**WHOLE["choices"][0], "logprobs": [-0.01]}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bad)

    registry = ProviderRegistry([mock_provider("oai", handler)])
    async with Pipeline(registry=registry) as pipe:
        with pytest.raises(errors.ProviderResponseError):
            await pipe.acompletion("oai/gpt-4o-mini", HI, **ASK)


def never(request: httpx.Request) -> httpx.Response:
    raise AssertionError("nothing should be sent")


@pytest.mark.parametrize("adapter", [ANTHROPIC, GEMINI, COHERE, OLLAMA], ids=lambda a: a.name)
async def test_native_adapters_refuse_logprobs_before_any_io(adapter: Any) -> None:
    transport: Callable[[httpx.Request], httpx.Response] = never
    client = httpx.AsyncClient(transport=httpx.MockTransport(transport))
    async with Pipeline(registry=ProviderRegistry([adapter]), http_client=client) as pipe:
        with pytest.raises(errors.InvalidRequestError, match="logprobs"):
            await pipe.acompletion(f"{adapter.name}/m", HI, logprobs=True, api_key="k")
