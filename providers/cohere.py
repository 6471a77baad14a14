"""Cohere's v2 API: ``/v2/chat`` (named SSE events) and ``/v2/embed``.

- **Key**: the per-call ``api_key``, else the adapter's, else ``CO_API_KEY``
  (the official SDK's variable), else ``COHERE_API_KEY``; sent as
  ``Authorization: Bearer``. None at all is an ``AuthenticationError`` before
  any I/O. **Server**: ``api_base`` or ``https://api.cohere.com`` (its root,
  without ``/v2``).
- **Chat requests**: messages keep their roles (``developer`` is ``system``);
  assistant tool calls go as v2 ``tool_calls`` (arguments a JSON string) with
  the reply's ``reasoning_content`` as ``tool_plan``; tool results go as
  ``tool`` messages with ``tool_call_id``. ``top_p``/``top_k``/``stop`` become
  ``p``/``k``/``stop_sequences``; ``tool_choice`` ``"required"``/``"none"``
  become ``REQUIRED``/``NONE`` (Cohere cannot force one named tool);
  ``response_format`` becomes ``{"type": "json_object", "json_schema": ...}``.
  Other parameters (``documents``, ``safety_mode``, ``thinking``...) pass through.
- **Replies**: text parts are ``content``; ``thinking`` parts and the
  ``tool_plan`` are ``reasoning_content``; ``finish_reason`` ``COMPLETE`` and
  ``STOP_SEQUENCE`` are ``stop``, ``MAX_TOKENS`` is ``length``, ``TOOL_CALL``
  is ``tool_calls``, ``ERROR`` and anything else ``stop``; usage is
  ``usage.tokens`` (the billed units when tokens are absent). Citations have
  no OpenAI counterpart and are not carried over.
- **Embeddings**: ``input_type`` defaults to ``"search_document"`` (pass
  ``input_type="search_query"`` for queries); float vectors are asked for;
  ``dimensions`` is ``output_dimension``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
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
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from pipeline._secrets import Secret, scrub
from pipeline.adapter import parsing, read_json, status_error
from providers._credentials import api_key
from providers._json import as_dict, as_list, floats, opt_dict, opt_list, opt_str, req_str
from providers._lines import ServerSentEvent, SSEParser
from providers.openai_compatible import CHAT_EMBEDDING, finish_reason

DEFAULT_BASE_URL = "https://api.cohere.com"
KEY_ENVS = ("CO_API_KEY", "COHERE_API_KEY")
DEFAULT_INPUT_TYPE = "search_document"

_PATHS: dict[str, str] = {"chat": "/v2/chat", "embedding": "/v2/embed"}
_ROLES: dict[str, str] = {"developer": "system"}
_V2_ROLES = frozenset({"system", "user", "assistant", "tool"})

# -- errors -----------------------------------------------------------------

# Statuses Cohere uses beyond the common ones.
_STATUS_CLASSES: dict[int, type[errors.DispatchError]] = {498: errors.AuthenticationError}
# Phrases in Cohere's error messages that name a precise error.
_MESSAGE_CLASSES: tuple[tuple[str, type[errors.DispatchError]], ...] = (
    ("too many tokens", errors.ContextWindowExceededError),
    ("context length", errors.ContextWindowExceededError),
    ("context window", errors.ContextWindowExceededError),
)


def error_class(message: str, status: int) -> type[errors.DispatchError]:
    by_status = _STATUS_CLASSES.get(status) or errors.error_class_for_status(status)
    lowered = message.lower()
    found = next((cls for phrase, cls in _MESSAGE_CLASSES if phrase in lowered), None)
    return found if found is not None and issubclass(found, by_status) else by_status


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, provider=request.provider, model=request.model)


# -- building requests --------------------------------------------------------


def _parts(request: Request, index: int, content: Any) -> Any:
    """A string as is; OpenAI's text and image_url parts in v2's shape."""
    if content is None or isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            image = dict(image) if isinstance(image, Mapping) else {"url": image}
            if not isinstance(image.get("url"), str):
                raise _invalid(request, f"messages[{index}]: an image_url part needs a url")
            out.append({"type": "image_url", "image_url": image})
        else:
            raise _invalid(
                request, f"messages[{index}]: cohere takes text and image_url parts, got {kind!r}"
            )
    return out


def _text(request: Request, index: int, content: Any) -> str:
    """A tool result as one string."""
    parts = _parts(request, index, content)
    if parts is None or isinstance(parts, str):
        return parts or ""
    if any(p["type"] != "text" for p in parts):
        raise _invalid(request, f"messages[{index}]: a tool result takes text parts only")
    return "\n".join(p["text"] for p in parts)


def _tool_calls_out(request: Request, index: int, calls: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if function is None or not isinstance(name, str) or not isinstance(call.get("id"), str):
            raise _invalid(
                request, f"messages[{index}].tool_calls[{position}] needs an id and function.name"
            )
        arguments = function.get("arguments")
        out.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments or {}),
                },
            }
        )
    return out


def cohere_messages(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        role = str(message.get("role"))
        role = _ROLES.get(role, role)
        if role not in _V2_ROLES:
            raise _invalid(request, f"messages[{i}]: cohere has no {role!r} role")
        item: dict[str, Any] = {"role": role}
        if role == "tool":
            item["tool_call_id"] = message.get("tool_call_id")
            item["content"] = _text(request, i, message.get("content"))
            out.append(item)
            continue
        content = _parts(request, i, message.get("content"))
        if content:
            item["content"] = content
        if message.get("tool_calls"):
            item["tool_calls"] = _tool_calls_out(request, i, message["tool_calls"])
            if message.get("reasoning_content"):
                item["tool_plan"] = message["reasoning_content"]
        out.append(item)
    return out


def _stop(request: Request, value: Any) -> Any:
    return [value] if isinstance(value, str) else list(value)


_TOOL_CHOICES: dict[str, str | None] = {"auto": None, "required": "REQUIRED", "none": "NONE"}


def _tool_choice(request: Request, value: Any) -> Any:
    if isinstance(value, str) and value in _TOOL_CHOICES:
        return _TOOL_CHOICES[value]
    raise _invalid(
        request,
        f"cohere cannot force one tool: tool_choice must be auto, required or none, not {value!r}",
    )


def _response_format(request: Request, value: Any) -> Any:
    kind = value.get("type") if isinstance(value, Mapping) else None
    schema = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(schema, Mapping) and "schema" in schema:
        return {"type": "json_object", "json_schema": schema["schema"]}
    raise _invalid(request, f"response_format {value!r} has no cohere equivalent")


_CONVERT: dict[str, Callable[[Request, Any], Any]] = {
    "stop": _stop,
    "tool_choice": _tool_choice,
    "response_format": _response_format,
}
_RENAMED: dict[str, str] = {
    "top_p": "p",
    "top_k": "k",
    "stop": "stop_sequences",
    "max_completion_tokens": "max_tokens",
    "dimensions": "output_dimension",
}
# OpenAI parameters with no counterpart: only the value Cohere behaves as.
_FIXED: dict[str, Any] = {"n": 1, "parallel_tool_calls": True, "encoding_format": "float"}
_SERVED = frozenset({"stream_options"})  # usage always arrives with message-end


def _place_params(request: Request, params: Mapping[str, Any], body: dict[str, Any]) -> None:
    for key, given in params.items():
        if given is None or key in _SERVED:
            continue
        if key in _FIXED:
            if given != _FIXED[key]:
                raise _invalid(
                    request, f"cohere cannot honour {key}={given!r} (only {_FIXED[key]!r})"
                )
            continue
        value = _CONVERT[key](request, given) if key in _CONVERT else given
        if value is not None:
            body[_RENAMED.get(key, key)] = value


def _chat_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": cohere_messages(request),
        "stream": request.stream,
    }
    _place_params(request, params, body)
    return body


def _embed_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    texts = [request.input] if isinstance(request.input, str) else list(request.input or ())
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid(request, "cohere embeds text: input must be a string or a list of strings")
    body: dict[str, Any] = {
        "model": request.model,
        "texts": texts,
        "input_type": DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    _place_params(request, params, body)
    return body


_BODIES: dict[str, Callable[[Request, Mapping[str, Any]], dict[str, Any]]] = {
    "chat": _chat_body,
    "embedding": _embed_body,
}

# -- reading replies ----------------------------------------------------------


def _count(data: dict[str, Any], key: str) -> int | None:
    """Cohere types its counts as numbers: ``12`` or ``12.0``."""
    value = data.get(key)
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise TypeError(f"{key} should be a whole number")
    return int(value)


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """``tokens`` (what the model saw), else ``billed_units``."""
    if data is None:
        return None
    tokens = opt_dict(data, "tokens") or {}
    billed = opt_dict(data, "billed_units") or {}
    prompt = _count(tokens, "input_tokens")
    completion = _count(tokens, "output_tokens")
    prompt = _count(billed, "input_tokens") if prompt is None else prompt
    completion = _count(billed, "output_tokens") if completion is None else completion
    return Usage(
        prompt_tokens=prompt or 0,
        completion_tokens=completion or 0,
        total_tokens=(prompt or 0) + (completion or 0),
        cached_tokens=_count(data, "cached_tokens"),
    )


def _joined(*texts: str | None) -> str | None:
    return "\n\n".join(t for t in texts if t) or None


def _message_content(content: Any) -> tuple[str | None, str | None]:
    """``message.content``: text parts, and the thinking parts of reasoning models."""
    if content is None or isinstance(content, str):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for part in map(as_dict, as_list(content, "content")):
        kind = part.get("type")
        if kind == "text":
            text.append(req_str(part, "text"))
        elif kind == "thinking":
            thinking.append(req_str(part, "thinking"))
    return "".join(text) if text else None, "".join(thinking) if thinking else None


def tool_call(data: Any) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    raw = function.get("arguments")
    return ToolCall(
        id=opt_str(data, "id") or "",
        function=Function(
            name=req_str(function, "name"),
            arguments=raw if isinstance(raw, str) else json.dumps(as_dict(raw or {}, "arguments")),
        ),
    )


def _parse_chat(request: Request, response: httpx.Response) -> ChatResponse:
    data = as_dict(read_json(request, response), "chat response")
    message = as_dict(data["message"], "message")
    text, thinking = _message_content(message.get("content"))
    calls = [tool_call(raw) for raw in opt_list(message, "tool_calls")]
    return ChatResponse(
        id=opt_str(data, "id") or "",
        model=request.model,
        choices=[
            Choice(
                message=Message(
                    content=text,
                    tool_calls=calls or None,
                    reasoning_content=_joined(thinking, opt_str(message, "tool_plan")),
                ),
                finish_reason=finish_reason(data.get("finish_reason")) or "stop",
            )
        ],
        usage=usage_from(opt_dict(data, "usage")),
    )


def _parse_embedding(request: Request, response: httpx.Response) -> EmbeddingResponse:
    data = as_dict(read_json(request, response), "embedding response")
    embeddings = data["embeddings"]
    if isinstance(embeddings, dict):  # by type, as asked with embedding_types
        embeddings = embeddings["float"]
    meta = opt_dict(data, "meta") or {}
    counts = opt_dict(meta, "tokens") or opt_dict(meta, "billed_units") or {}
    prompt = _count(counts, "input_tokens") or 0
    return EmbeddingResponse(
        model=request.model,
        data=[
            Embedding(index=i, embedding=floats(v))
            for i, v in enumerate(as_list(embeddings, "embeddings"))
        ],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt),
    )


_PARSERS: dict[str, Callable[[Request, httpx.Response], AnyResponse]] = {
    "chat": _parse_chat,
    "embedding": _parse_embedding,
}

# -- streams ------------------------------------------------------------------


def _delta_message(data: dict[str, Any]) -> dict[str, Any]:
    return opt_dict(opt_dict(data, "delta") or {}, "message") or {}


class CohereStreamDecoder:
    """v2's named events: message-start, content-*, tool-plan-delta, tool-call-*,
    citation-*, message-end (with the finish reason and usage)."""

    __slots__ = ("_calls", "_done", "_events", "_id", "_request", "_secrets")

    def __init__(self, request: Request, secrets: tuple[str, ...] = ()) -> None:
        self._request = request
        self._secrets = (*request.secrets(), *secrets)  # kept out of error messages
        self._events = SSEParser()
        self._id = ""
        self._calls = 0  # tool calls started so far
        self._done = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            return self._chunks(self._events.feed(data))

    def close(self) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            chunks = self._chunks(self._events.close())
        if not self._done:
            raise errors.ProviderResponseError(
                f"{self._request.provider}'s stream ended before message-end",
                provider=self._request.provider,
                model=self._request.model,
            )
        return chunks

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for event in events:
            if self._done:
                break
            data = as_dict(json.loads(event.data), "stream event")
            kind = opt_str(data, "type") or event.event
            handler = _EVENTS.get(kind)
            if handler is None and isinstance(data.get("message"), str):
                raise self._error(data["message"])  # an error body ({"id", "message"})
            chunk = handler(self, data) if handler is not None else None
            if chunk is not None:
                out.append(chunk)
        return out

    def _error(self, message: str) -> errors.DispatchError:
        request = self._request
        return errors.InternalServerError(
            message, provider=request.provider, model=request.model, secrets=self._secrets
        )

    def _chunk(
        self, delta: Delta, finish: str | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        return ChatChunk(
            id=self._id,
            model=self._request.model,
            provider=self._request.provider,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            usage=usage,
        )

    def _message_start(self, data: dict[str, Any]) -> ChatChunk:
        self._id = opt_str(data, "id") or ""
        return self._chunk(Delta(role="assistant"))

    def _content_event(self, data: dict[str, Any]) -> ChatChunk | None:
        content = opt_dict(_delta_message(data), "content") or {}
        text = opt_str(content, "text")
        thinking = opt_str(content, "thinking")
        if not text and not thinking:
            return None
        return self._chunk(Delta(content=text or None, reasoning_content=thinking or None))

    def _tool_plan(self, data: dict[str, Any]) -> ChatChunk | None:
        plan = opt_str(_delta_message(data), "tool_plan")
        return self._chunk(Delta(reasoning_content=plan)) if plan else None

    def _tool_call_start(self, data: dict[str, Any]) -> ChatChunk:
        call = tool_call(_delta_message(data)["tool_calls"])
        self._calls += 1
        part = ToolCallDelta(
            index=self._calls - 1,
            id=call.id or None,
            type="function",
            function=FunctionDelta(name=call.function.name, arguments=call.function.arguments),
        )
        return self._chunk(Delta(tool_calls=[part]))

    def _tool_call_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        if not self._calls:
            raise ValueError("tool-call-delta before any tool-call-start")
        calls = as_dict(_delta_message(data)["tool_calls"], "tool_calls")
        arguments = opt_str(opt_dict(calls, "function") or {}, "arguments")
        if not arguments:
            return None
        part = ToolCallDelta(index=self._calls - 1, function=FunctionDelta(arguments=arguments))
        return self._chunk(Delta(tool_calls=[part]))

    def _message_end(self, data: dict[str, Any]) -> ChatChunk:
        delta = opt_dict(data, "delta") or {}
        failure = opt_str(delta, "error")
        if failure:
            raise self._error(failure)
        self._done = True
        return self._chunk(
            Delta(),
            finish=finish_reason(delta.get("finish_reason")) or "stop",
            usage=usage_from(opt_dict(delta, "usage")),
        )


def _nothing(decoder: CohereStreamDecoder, data: dict[str, Any]) -> None:
    """An event that carries nothing for a chat completion (citations among them)."""


_EVENTS: dict[str, Callable[[CohereStreamDecoder, dict[str, Any]], ChatChunk | None]] = {
    "message-start": CohereStreamDecoder._message_start,
    "content-start": CohereStreamDecoder._content_event,
    "content-delta": CohereStreamDecoder._content_event,
    "content-end": _nothing,
    "tool-call-end": _nothing,
    "citation-start": _nothing,
    "citation-end": _nothing,
    "debug": _nothing,
    "tool-plan-delta": CohereStreamDecoder._tool_plan,
    "tool-call-start": CohereStreamDecoder._tool_call_start,
    "tool-call-delta": CohereStreamDecoder._tool_call_delta,
    "message-end": CohereStreamDecoder._message_end,
}

# -- the adapter ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Cohere:
    """Cohere's v2 API. See the module docstring."""

    name: str = "cohere"
    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = attrs.field(default=None, repr=False)
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = (
        "command-",
        "embed-english",
        "embed-multilingual",
        "embed-v4",
        "c4ai-",
    )
    priority: int = 0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    def configured_key(self, request: Request) -> str | None:
        """Per call, else configured, else ``CO_API_KEY``/``COHERE_API_KEY``."""
        return api_key(request, self.api_key, KEY_ENVS, required=False)

    def key(self, request: Request) -> str:
        """The key to send; none at all is an AuthenticationError naming the variables."""
        found = api_key(request, self.api_key, KEY_ENVS, provider=self.name)
        assert found is not None  # required: api_key raised otherwise
        return found

    def build(self, request: Request) -> httpx.Request:
        params = dict(request.params)
        extra_headers: Mapping[str, str] = params.pop("extra_headers", None) or {}
        extra_body: Mapping[str, Any] = params.pop("extra_body", None) or {}
        key = self.key(request)
        body = _BODIES[request.endpoint](request, params)
        body.update(extra_body)
        return httpx.Request(
            "POST",
            (request.api_base or self.base_url).rstrip("/") + _PATHS[request.endpoint],
            json=body,
            headers={"authorization": f"Bearer {key}", **extra_headers},
        )

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, response)

    def stream_decoder(self, request: Request) -> CohereStreamDecoder:
        key = self.configured_key(request)
        return CohereStreamDecoder(request, (key,) if key else ())

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = response.text[:500]
        message = scrub(message, [self.configured_key(request)])  # a key the server echoed
        return status_error(
            request, response, message, cls=error_class(message, response.status_code)
        )


COHERE = Cohere()
