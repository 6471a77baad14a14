"""Anthropic's Messages API (``POST /v1/messages``), behind OpenAI's shapes.

Requests are given in OpenAI's chat shape and sent in Anthropic's:

- ``system`` and ``developer`` messages, wherever they are, are lifted (in
  order) into the top-level ``system``: one plain string stays a string,
  anything else becomes a list of text blocks;
- ``max_tokens`` is required by Anthropic: when neither ``max_tokens`` nor
  ``max_completion_tokens`` is given it is :data:`DEFAULT_MAX_TOKENS` (4096),
  or the adapter's own ``max_tokens``;
- ``stop`` becomes ``stop_sequences``; ``user`` becomes ``metadata.user_id``;
  ``stream_options`` is not sent (Anthropic always streams usage);
  ``temperature`` must be within 0..1 (Anthropic's range);
- ``image_url`` parts become ``image`` blocks: a ``data:<type>;base64,`` URL
  gives a base64 source, an http(s) URL a url source (``detail`` has no
  Anthropic equivalent and is not sent);
- function ``tools`` become ``{name, description, input_schema}``;
  ``tool_choice`` ``auto``/``required``/``none``/a named function become
  ``auto``/``any``/``none``/``tool``; ``parallel_tool_calls=False`` becomes
  ``disable_parallel_tool_use``;
- an assistant's ``tool_calls`` become ``tool_use`` blocks (the arguments
  JSON string parsed into ``input``); ``tool`` messages become
  ``tool_result`` blocks, consecutive ones sharing one user message;
- a ``cache_control`` key on a message or on a tool is carried onto its
  (last) content block or tool; content parts Anthropic already understands
  (``text`` with ``cache_control``, ``image``, ``document``, ``thinking``...)
  and tools without a ``function`` key pass through as given;
- every other parameter (``thinking``, ``top_k``...) passes through into the
  body, ``extra_body`` is merged in last and ``extra_headers`` (for
  ``anthropic-beta``) are sent as headers. ``api_version=`` overrides the
  ``anthropic-version`` header (``2023-06-01``).

Responses: ``text`` blocks are the message content, ``thinking`` blocks its
``reasoning_content``, ``tool_use`` blocks its ``tool_calls`` (ids kept, input
as a JSON string). ``prompt_tokens`` counts every input token (fresh, written
to and read from the prompt cache); ``cached_tokens`` is the part read from
the cache, ``cache_write_tokens`` the part written to it. Anthropic sends no
creation time, so ``created`` is 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._responses import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Function,
    FunctionDelta,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from pipeline._secrets import Secret
from pipeline.adapter import parsing, read_json, status_error, timeout_extensions
from providers._credentials import api_key
from providers._json import as_dict, as_list, opt_dict, opt_int, opt_str, req_str
from providers._lines import ServerSentEvent, SSEParser
from providers.openai_compatible import CHAT

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "AnthropicMessages",
    "AnthropicStreamDecoder",
]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

_Block = dict[str, Any]
_EMPTY: Mapping[str, str] = MappingProxyType({})

_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_TYPES: dict[str, type[errors.DispatchError]] = {
    "invalid_request_error": errors.BadRequestError,
    "request_too_large": errors.BadRequestError,
    "authentication_error": errors.AuthenticationError,
    "permission_error": errors.PermissionDeniedError,
    "not_found_error": errors.NotFoundError,
    "rate_limit_error": errors.RateLimitError,
    "api_error": errors.InternalServerError,
    "overloaded_error": errors.ServiceUnavailableError,
}
# Phrases of an invalid_request_error that mean the context window is too small.
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit")

_TOOL_CHOICES: dict[str, str] = {
    "auto": "auto",
    "required": "any",
    "any": "any",
    "none": "none",
}
_NATIVE_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})


def finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("stop_reason should be a string")
    return _FINISH.get(value, "stop")


def usage_of(data: dict[str, Any]) -> Usage:
    """Anthropic's usage: ``input_tokens`` excludes cache writes and reads; OpenAI's
    ``prompt_tokens`` includes them, so they are added back."""
    read = opt_int(data, "cache_read_input_tokens")
    prompt = (
        (opt_int(data, "input_tokens") or 0)
        + (opt_int(data, "cache_creation_input_tokens") or 0)
        + (read or 0)
    )
    completion = opt_int(data, "output_tokens") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_tokens=opt_int(data, "cache_creation_input_tokens"),
    )


# -- requests ----------------------------------------------------------------


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        message, provider=request.provider, model=request.model, secrets=request.secrets()
    )


def _image(request: Request, part: Mapping[str, Any]) -> _Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str):
        raise _invalid(request, "an image_url part needs image_url.url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, *flags = header.split(";")
        if not comma or not media_type or "base64" not in flags:
            raise _invalid(
                request, "image data URLs must look like data:<media type>;base64,<data>"
            )
        source: _Block = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _invalid(request, "an image URL must be an http(s) URL or a base64 data: URL")
    block: _Block = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(request: Request, content: Any) -> list[_Block]:
    """Content (a string, or a list of OpenAI or Anthropic parts) as Anthropic blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, Sequence):
        raise _invalid(request, "message content must be a string or a list of parts")
    blocks: list[_Block] = []
    for part in content:
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise _invalid(request, "each content part must be a dict with a 'type'")
        blocks.append(_image(request, part) if part["type"] == "image_url" else dict(part))
    return blocks


def _mark_cache(message: Mapping[str, Any], blocks: list[_Block]) -> list[_Block]:
    if "cache_control" in message and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": message["cache_control"]}
    return blocks


def _content(request: Request, message: Mapping[str, Any]) -> str | list[_Block]:
    content = message.get("content")
    if isinstance(content, str) and "cache_control" not in message:
        return content
    return _mark_cache(message, _blocks(request, content))


def _tool_use(request: Request, call: Any) -> _Block:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _invalid(request, "each tool call needs function.name")
    if not isinstance(call.get("id"), str):
        raise _invalid(request, f"the call to {function['name']!r} needs an id")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = None
    if not isinstance(arguments, Mapping):
        raise _invalid(
            request, f"the arguments of the call to {function['name']!r} must be a JSON object"
        )
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


class _Conversation:
    """OpenAI messages folded into Anthropic's ``system`` and ``messages``."""

    __slots__ = ("_request", "_tool_results", "messages", "system")

    def __init__(self, request: Request) -> None:
        self._request = request
        self.system: list[_Block] = []
        self.messages: list[_Block] = []
        self._tool_results: list[_Block] | None = None  # the open user turn of tool results

    def add(self, message: Mapping[str, Any]) -> None:
        role = message.get("role")
        add = _ROLES.get(role) if isinstance(role, str) else None
        if add is None:
            raise _invalid(
                self._request,
                f"anthropic does not take {role!r} messages (roles: {', '.join(sorted(_ROLES))})",
            )
        add(self, message)

    def _append(self, role: str, content: str | list[_Block]) -> None:
        self.messages.append({"role": role, "content": content})
        self._tool_results = None

    def _system(self, message: Mapping[str, Any]) -> None:
        self.system.extend(_mark_cache(message, _blocks(self._request, message.get("content"))))

    def _user(self, message: Mapping[str, Any]) -> None:
        self._append("user", _content(self._request, message))

    def _assistant(self, message: Mapping[str, Any]) -> None:
        calls = message.get("tool_calls") or ()
        if message.get("function_call") is not None:
            raise _invalid(self._request, "function_call is not supported: use tool_calls")
        if not calls:
            self._append("assistant", _content(self._request, message))
            return
        content = message.get("content")
        blocks = _blocks(self._request, content) if content else []
        blocks.extend(_tool_use(self._request, call) for call in calls)
        self._append("assistant", _mark_cache(message, blocks))

    def _tool(self, message: Mapping[str, Any]) -> None:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise _invalid(self._request, "a tool message needs the tool_call_id it answers")
        content = message.get("content")
        result: _Block = {
            "type": "tool_result",
            "tool_use_id": call_id,
            "content": content if isinstance(content, str) else _blocks(self._request, content),
        }
        block = _mark_cache(message, [result])[0]
        if self._tool_results is None:
            self._append("user", [])
            self._tool_results = self.messages[-1]["content"]
        self._tool_results.append(block)

    def system_field(self) -> str | list[_Block] | None:
        if not self.system:
            return None
        only = self.system[0]
        text = only.get("text")
        if (
            len(self.system) == 1
            and only == {"type": "text", "text": text}
            and isinstance(text, str)
        ):
            return text  # one plain text: send it as the plain string it was
        return self.system


_ROLES: dict[str, Callable[[_Conversation, Mapping[str, Any]], None]] = {
    "system": _Conversation._system,
    "developer": _Conversation._system,
    "user": _Conversation._user,
    "assistant": _Conversation._assistant,
    "tool": _Conversation._tool,
}


def _tool_definition(request: Request, tool: Any) -> _Block:
    if not isinstance(tool, Mapping):
        raise _invalid(request, "each tool must be a dict")
    function = tool.get("function")
    if function is None:
        return dict(tool)  # already Anthropic's shape, or one of its server tools
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _invalid(request, "each function tool needs function.name")
    out: _Block = {"name": function["name"]}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if "strict" in function:
        out["strict"] = function["strict"]
    out.update((k, v) for k, v in tool.items() if k not in ("type", "function"))
    return out


def _tool_choice(request: Request, choice: Any, parallel: Any) -> _Block | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise _invalid(request, "parallel_tool_calls must be a bool")
    if choice is None:
        if parallel is None:
            return None
        choice = "auto"
    out: _Block
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        out = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if not isinstance(name, str):
            raise _invalid(request, "tool_choice.function needs a name")
        out = {"type": "tool", "name": name}
    elif isinstance(choice, Mapping) and choice.get("type") in _NATIVE_TOOL_CHOICES:
        out = dict(choice)
    else:
        raise _invalid(
            request,
            "tool_choice must be 'auto', 'required', 'none' or "
            "{'type': 'function', 'function': {'name': ...}}",
        )
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _max_tokens(request: Request, params: dict[str, Any], default: int) -> Any:
    given = params.pop("max_tokens", None)
    alias = params.pop("max_completion_tokens", None)
    if given is not None and alias is not None and given != alias:
        raise _invalid(request, "max_tokens and max_completion_tokens disagree: give one")
    return given if given is not None else alias if alias is not None else default


def chat_body(request: Request, params: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """The ``/v1/messages`` JSON body for an OpenAI-shaped chat request."""
    params = {k: v for k, v in params.items() if v is not None}
    conversation = _Conversation(request)
    for message in request.messages:
        conversation.add(message)
    body: dict[str, Any] = {"model": request.model, "messages": conversation.messages}
    system = conversation.system_field()
    if system is not None:
        if "system" in params:
            raise _invalid(request, "give system messages or the system parameter, not both")
        body["system"] = system
    body["max_tokens"] = _max_tokens(request, params, max_tokens)
    temperature = params.get("temperature")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 1:
        raise _invalid(request, f"anthropic takes a temperature from 0 to 1, got {temperature}")
    stop = params.pop("stop", None)
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = params.pop("tools", None)
    if tools is not None:
        body["tools"] = [_tool_definition(request, tool) for tool in tools]
    choice = _tool_choice(
        request, params.pop("tool_choice", None), params.pop("parallel_tool_calls", None)
    )
    if choice is not None:
        body["tool_choice"] = choice
    user = params.pop("user", None)
    if user is not None:
        body["metadata"] = {"user_id": user}
    params.pop("stream_options", None)  # Anthropic always streams usage
    extra = params.pop("extra_body", None) or {}
    body.update(params)
    if request.stream:
        body["stream"] = True
    body.update(extra)
    return body


# -- responses ---------------------------------------------------------------


def _tool_call(block: dict[str, Any]) -> ToolCall:
    return ToolCall(
        id=req_str(block, "id"),
        function=Function(
            name=req_str(block, "name"),
            arguments=json.dumps(as_dict(block.get("input", {}), "tool input")),
        ),
    )


def message_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "message")
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in as_list(data["content"], "content"):
        block = as_dict(block, "content block")
        kind = opt_str(block, "type")
        if kind == "text":
            text.append(req_str(block, "text"))
        elif kind == "thinking":
            thinking.append(req_str(block, "thinking"))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    usage = opt_dict(data, "usage")
    return ChatResponse(
        id=opt_str(data, "id") or "",
        model=opt_str(data, "model") or request.model,
        choices=[
            Choice(
                message=Message(
                    role=opt_str(data, "role") or "assistant",
                    content="".join(text) if text else None,
                    tool_calls=calls or None,
                    reasoning_content="".join(thinking) if thinking else None,
                ),
                finish_reason=finish_reason(data.get("stop_reason")) or "stop",
            )
        ],
        usage=usage_of(usage) if usage is not None else None,
    )


# -- errors ------------------------------------------------------------------


def _error_parts(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, error type, request id)`` of ``{"type": "error", "error": {...}}``."""
    if not isinstance(body, dict):
        return "", None, None
    inner = body.get("error")
    request_id = body.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    if not isinstance(inner, dict):
        return (inner if isinstance(inner, str) else ""), None, request_id
    kind = inner.get("type")
    return str(inner.get("message") or ""), kind if isinstance(kind, str) else None, request_id


def _error_class(kind: str | None, message: str) -> type[errors.DispatchError] | None:
    cls = _ERROR_TYPES.get(kind or "")
    if cls is errors.BadRequestError and any(m in message.lower() for m in _CONTEXT_MARKERS):
        return errors.ContextWindowExceededError
    return cls


def error_from_body(request: Request, response: httpx.Response) -> errors.DispatchError:
    try:
        body: Any = json.loads(response.content)
    except ValueError:
        body = None
    message, kind, request_id = _error_parts(body)
    if body is None:
        message = response.text[:500]
    cls = _error_class(kind, message)
    if (
        cls is not None
        and response.status_code >= 500
        and not issubclass(cls, errors.InternalServerError)
    ):
        cls = None  # a server error's status says more than its type
    error = status_error(request, response, message, cls=cls, code=kind)
    if request_id is not None:
        error.request_id = request_id
    return error


def _stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    """An ``error`` event sent after the 200 status: no HTTP status of its own."""
    message, kind, request_id = _error_parts(data)
    cls = _error_class(kind, message) or errors.InternalServerError
    return cls(
        message or f"{request.provider} sent an error event",
        provider=request.provider,
        model=request.model,
        request_id=request_id,
        code=kind,
        secrets=request.secrets(),
    )


# -- streams -----------------------------------------------------------------


def _index(data: dict[str, Any]) -> int:
    value = opt_int(data, "index")
    if value is None:
        raise KeyError("index")
    return value


class AnthropicStreamDecoder:
    """Anthropic's named SSE events as OpenAI-shaped chunks.

    ``message_start`` gives a role chunk (id, model, input usage); text and
    thinking deltas give content and reasoning chunks; a ``tool_use`` block
    start gives a tool-call delta with its id, name and empty arguments, and
    its ``input_json_delta`` fragments follow at the same tool index;
    ``message_delta`` gives the last chunk, with the finish reason and the
    usage of the whole stream. An ``error`` event raises the unified error; a
    body that ends before ``message_stop`` raises ProviderResponseError. An
    error met after other events of the same piece is raised by the next call,
    so the chunks before it reach the caller first.
    """

    __slots__ = (
        "_events",
        "_id",
        "_model",
        "_pending",
        "_request",
        "_stopped",
        "_tools",
        "_usage",
    )

    def __init__(self, request: Request) -> None:
        self._request = request
        self._events = SSEParser()
        self._id = ""
        self._model = request.model
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._stopped = False
        self._pending: errors.DispatchError | None = None

    def _raise_pending(self) -> None:
        if self._pending is not None:
            raise self._pending

    def feed(self, data: bytes) -> list[ChatChunk]:
        self._raise_pending()
        with parsing(self._request, "stream"):
            events = self._events.feed(data)
        return self._chunks(events)

    def close(self) -> list[ChatChunk]:
        self._raise_pending()
        with parsing(self._request, "stream"):
            events = self._events.close()
        out = self._chunks(events)
        self._raise_pending()  # nothing is called after close: raise it now
        if not self._stopped:
            raise errors.ProviderResponseError(
                f"{self._request.provider} ended the stream before message_stop",
                provider=self._request.provider,
                model=self._request.model,
            )
        return out

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for event in events:
            if self._stopped:
                break
            try:
                with parsing(self._request, "stream event"):
                    data = as_dict(json.loads(event.data), "stream event")
                    handle = _EVENTS.get(opt_str(data, "type") or event.event)
                    chunk = handle(self, data) if handle is not None else None
            except errors.DispatchError as exc:
                if not out:
                    raise
                self._pending = exc
                break
            if chunk is not None:
                out.append(chunk)
        return out

    def _chunk(
        self, delta: Delta, finish: str | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        return ChatChunk(
            id=self._id,
            model=self._model,
            provider=self._request.provider,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            usage=usage,
        )

    def _text(self, text: str, reasoning: bool) -> ChatChunk | None:
        if not text:
            return None
        return self._chunk(Delta(reasoning_content=text) if reasoning else Delta(content=text))

    def _message_start(self, data: dict[str, Any]) -> ChatChunk:
        message = as_dict(data["message"], "message")
        self._id = opt_str(message, "id") or ""
        self._model = opt_str(message, "model") or self._model
        self._usage = dict(opt_dict(message, "usage") or {})
        return self._chunk(Delta(role="assistant", content=""))

    def _block_start(self, data: dict[str, Any]) -> ChatChunk | None:
        index = _index(data)
        block = as_dict(data["content_block"], "content block")
        kind = opt_str(block, "type")
        if kind == "tool_use":
            tool = self._tools[index] = len(self._tools)
            call = ToolCallDelta(
                index=tool,
                id=req_str(block, "id"),
                type="function",
                function=FunctionDelta(name=req_str(block, "name"), arguments=""),
            )
            return self._chunk(Delta(tool_calls=[call]))
        if kind == "text":
            return self._text(opt_str(block, "text") or "", reasoning=False)
        if kind == "thinking":
            return self._text(opt_str(block, "thinking") or "", reasoning=True)
        return None

    def _block_delta(self, data: dict[str, Any]) -> ChatChunk | None:
        index = _index(data)
        delta = as_dict(data["delta"], "delta")
        kind = opt_str(delta, "type")
        if kind == "text_delta":
            return self._text(req_str(delta, "text"), reasoning=False)
        if kind == "thinking_delta":
            return self._text(req_str(delta, "thinking"), reasoning=True)
        if kind == "input_json_delta":
            fragment = req_str(delta, "partial_json")
            tool = self._tools[index]
            if not fragment:
                return None
            call = ToolCallDelta(index=tool, function=FunctionDelta(arguments=fragment))
            return self._chunk(Delta(tool_calls=[call]))
        return None  # signature_delta, citations_delta: no OpenAI field for them

    def _message_delta(self, data: dict[str, Any]) -> ChatChunk:
        delta = as_dict(data["delta"], "delta")
        final = opt_dict(data, "usage") or {}
        self._usage.update((k, v) for k, v in final.items() if v is not None)
        return self._chunk(
            Delta(), finish=finish_reason(delta.get("stop_reason")), usage=usage_of(self._usage)
        )

    def _message_stop(self, data: dict[str, Any]) -> None:
        self._stopped = True

    def _error(self, data: dict[str, Any]) -> None:
        raise _stream_error(self._request, data)


_EVENTS: dict[str, Callable[[AnthropicStreamDecoder, dict[str, Any]], ChatChunk | None]] = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_delta": AnthropicStreamDecoder._block_delta,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
    "error": AnthropicStreamDecoder._error,
    # content_block_stop and ping carry nothing to pass on
}


# -- the adapter -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AnthropicMessages:
    """The Messages API, configurable for proxies and gateways that speak it.

    - ``base_url``: without ``/v1`` (``https://api.anthropic.com``);
      ``api_base=`` per call overrides it;
    - ``key_env``: the environment variable holding the key (None: send no
      key); ``api_key`` configures one in code instead; sent as ``x-api-key``;
    - ``version``: the ``anthropic-version`` header; ``headers``: sent with
      every request; ``max_tokens``: the default when a call gives none;
    - ``timeout``, ``priority``, ``models``, ``prefixes``, ``transport``: as
      for :class:`providers.OpenAICompatible`.
    """

    name: str = "anthropic"
    base_url: str = ANTHROPIC_BASE_URL
    key_env: str | None = "ANTHROPIC_API_KEY"
    api_key: Secret | None = attrs.field(default=None, repr=False)
    version: str = ANTHROPIC_VERSION
    headers: Mapping[str, str] = _EMPTY
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float | None = None
    priority: int = 10
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ("claude-",)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return CHAT

    def key(self, request: Request) -> str | None:
        """Per call, else configured, else the environment; raises if absent."""
        env = (self.key_env,) if self.key_env else ()
        return api_key(request, self.api_key, env, required=bool(env), provider=self.name)

    def url(self, request: Request) -> str:
        return (request.api_base or self.base_url).rstrip("/") + "/v1/messages"

    def build(self, request: Request) -> httpx.Request:
        key = self.key(request)
        params = dict(request.params)
        extra_headers = params.pop("extra_headers", None) or {}
        body = chat_body(request, params, self.max_tokens)
        headers = {**self.headers, "anthropic-version": request.api_version or self.version}
        if key:
            headers["x-api-key"] = key
        return httpx.Request(
            "POST",
            self.url(request),
            headers={**headers, **extra_headers},
            json=body,
            extensions=timeout_extensions(self.timeout),
        )

    def parse(self, request: Request, response: httpx.Response) -> ChatResponse:
        with parsing(request):
            return message_response(request, read_json(request, response))

    def stream_decoder(self, request: Request) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from_body(request, response)


ANTHROPIC = AnthropicMessages()
