"""Where the overhead benchmark sends its requests, and the registry that points there.

- ``mock``: an in-process ``httpx.MockTransport``: no sockets, so what is left
  is the client's and the pipeline's own cost;
- ``httpx``: the loopback server, through ``httpx.AsyncClient()`` as httpx
  ships it (100 connections, 20 kept alive);
- ``own``: the loopback server, through the client a pipeline makes
  for itself when none is injected (``pipeline._clients.default_client``:
  the aiohttp transport on asyncio when installed); the pipeline variants
  here are built without ``http_client=``;
- ``aiohttp``: the loopback server, through httpx with the aiohttp-backed
  transport (``httpx_aiohttp.AiohttpTransport``, asyncio only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import attrs
import httpx
from httpx_aiohttp import AiohttpTransport

from benchmarks.replies import SHORT_MODEL, completion_body, stream_length, streams
from pipeline._clients import default_client
from providers import OpenAICompatible, ProviderRegistry

PROVIDER = "bench"
MODEL_NAME = "bench-model"
MODEL = f"{PROVIDER}/{MODEL_NAME}"
SHORT = f"{PROVIDER}/{SHORT_MODEL}"  # streams SHORT_STREAM_CHUNKS chunks
API_KEY = "sk-bench-0000000000000000"  # given per call, as a user would
MOCK_BASE_URL = "http://bench.invalid/v1"

_COMPLETION = completion_body(MODEL_NAME)
_EVENTS = streams(MODEL_NAME)
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream"}


async def _event_stream(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


def mock_handler(request: httpx.Request) -> httpx.Response:
    """The in-process target: the same bytes the loopback server sends."""
    chunks = stream_length(request.content)
    if chunks is not None:
        return httpx.Response(200, headers=_SSE, content=_event_stream(_EVENTS[chunks]))
    return httpx.Response(200, headers=_JSON, content=_COMPLETION)


@attrs.frozen
class Target:
    """A place to send requests: a client to reach it, and whether pipelines get that client."""

    key: str
    label: str
    base_url: str
    client: Callable[[], httpx.AsyncClient]
    inject: bool = True

    def registry(self) -> ProviderRegistry:
        """One OpenAI-compatible row pointing at this target (no key configured)."""
        return ProviderRegistry([OpenAICompatible(name=PROVIDER, base_url=self.base_url)])

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"


def mock_target() -> Target:
    return Target(
        "mock",
        "in-process MockTransport",
        MOCK_BASE_URL,
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(mock_handler)),
    )


def loopback_targets(base_url: str) -> list[Target]:
    return [
        Target("httpx", "loopback, httpx.AsyncClient()", base_url, httpx.AsyncClient),
        Target(
            "own",
            "loopback, the client a pipeline makes itself",
            base_url,
            default_client,
            inject=False,
        ),
        Target(
            "aiohttp",
            "loopback, httpx + AiohttpTransport",
            base_url,
            lambda: httpx.AsyncClient(transport=AiohttpTransport()),
        ),
    ]
