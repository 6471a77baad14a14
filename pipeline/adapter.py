"""Everything a provider adapter needs, in one import: the contract, the types, the helpers.

An adapter never does I/O. The terminal handler calls:

1. ``adapter.build(request) -> httpx.Request`` (bad input, an unknown
   parameter or a missing key raise here, before any I/O);
2. ``await adapter.authorize(request, http_request)``, only if the adapter has
   that method: credentials that need awaiting (a token provider) are added
   to the built request;
3. sends it (the pipeline's pooled client, or ``adapter.transport`` when the
   adapter brings its own, as the ``mock`` provider does);
4. on an error status, ``adapter.parse_error(request, response)`` (body read)
   gives the unified error (through the ErrorMapping middleware);
5. otherwise ``adapter.parse(request, response)`` (body read) for a whole
   response, or ``adapter.stream_decoder(request)`` fed the body's bytes.

The built-in adapters import only from this module. Most derive from
:class:`HTTPAdapter`, which writes the common part once (key lookup, URLs,
``extra_headers``/``extra_body``, the parameter policy, the parse guard); the
README's "Write a native provider" section walks through one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import httpx

from pipeline import errors
from pipeline._adapter_base import (
    ALL_ENDPOINTS,
    CHAT,
    CHAT_EMBEDDING,
    EMPTY,
    HTTPAdapter,
    first_env,
    lookup_key,
)
from pipeline._adapter_framing import (
    JSONArraySplitter,
    LineSplitter,
    NDJSONParser,
    ServerSentEvent,
    SSEParser,
)
from pipeline._adapter_helpers import (
    class_for_status,
    error_body,
    error_message,
    event_error,
    parsing,
    read_json,
    request_id_from,
    retry_after_from,
    status_error,
    stream_ended_early,
    timeout_extensions,
)
from pipeline._adapter_json import (
    as_dict,
    as_list,
    floats,
    opt_dict,
    opt_int,
    opt_list,
    opt_str,
    req_str,
)
from pipeline._adapter_params import (
    ADVISORY_PARAMS,
    OPENAI_CHAT_PARAMS,
    OPENAI_PARAMS,
    Handling,
    ParamPolicy,
)
from pipeline._adapter_stream import FramedDecoder, Framer, call_deltas
from pipeline._request import ENDPOINTS, Endpoint, Request
from pipeline._responses import (
    AnyResponse,
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingResponse,
    Function,
    FunctionDelta,
    Image,
    ImageResponse,
    Message,
    SpeechResponse,
    ToolCall,
    ToolCallDelta,
    TranscriptionResponse,
    Usage,
)
from pipeline._secrets import Secret

__all__ = [
    "ADVISORY_PARAMS",
    "ALL_ENDPOINTS",
    "CHAT",
    "CHAT_EMBEDDING",
    "EMPTY",
    "ENDPOINTS",
    "OPENAI_CHAT_PARAMS",
    "OPENAI_PARAMS",
    "Adapter",
    "AnyResponse",
    "ChatChunk",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Endpoint",
    "FramedDecoder",
    "Framer",
    "Function",
    "FunctionDelta",
    "HTTPAdapter",
    "Handling",
    "Image",
    "ImageResponse",
    "JSONArraySplitter",
    "LineSplitter",
    "Message",
    "NDJSONParser",
    "ParamPolicy",
    "Request",
    "SSEParser",
    "Secret",
    "ServerSentEvent",
    "SpeechResponse",
    "StreamDecoder",
    "ToolCall",
    "ToolCallDelta",
    "TranscriptionResponse",
    "Usage",
    "as_dict",
    "as_list",
    "call_deltas",
    "class_for_status",
    "error_body",
    "error_message",
    "errors",
    "event_error",
    "first_env",
    "floats",
    "lookup_key",
    "opt_dict",
    "opt_int",
    "opt_list",
    "opt_str",
    "parsing",
    "read_json",
    "req_str",
    "request_id_from",
    "retry_after_from",
    "status_error",
    "stream_ended_early",
    "timeout_extensions",
]


class StreamDecoder(Protocol):
    """Incremental: bytes in (any split, down to one byte at a time), chunks out."""

    def feed(self, data: bytes) -> list[ChatChunk]: ...

    def close(self) -> list[ChatChunk]:
        """The body ended: flush what is left. Raise ProviderResponseError if it
        ended mid-event or before the provider's end marker."""
        ...


@runtime_checkable
class Adapter(Protocol):
    """What the registry holds for each provider name."""

    @property
    def name(self) -> str: ...

    @property
    def endpoints(self) -> frozenset[Endpoint]: ...

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """None: requests go through the pipeline's pooled httpx.AsyncClient."""
        ...

    @property
    def models(self) -> frozenset[str]:
        """Bare model names this provider claims for auto-detection."""
        ...

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Model-name prefixes this provider claims for auto-detection."""
        ...

    @property
    def priority(self) -> int:
        """Wins a contested name or prefix when higher."""
        ...

    def build(self, request: Request) -> httpx.Request: ...

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse: ...

    def stream_decoder(self, request: Request) -> StreamDecoder: ...

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError: ...
