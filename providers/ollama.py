"""Ollama's native API: ``/api/chat`` (NDJSON streams) and ``/api/embed``.

Name a model ``"ollama/llama3.2"``: local model names collide with every other
provider's, so Ollama claims no bare names for auto-detection.

- **Server**: the per-call ``api_base``, else the adapter's ``base_url``, else
  ``OLLAMA_API_BASE``, else ``OLLAMA_HOST`` (Ollama's own forms: ``host``,
  ``host:port`` or a URL; without a scheme it is ``http`` on port 11434), else
  ``http://localhost:11434``. Give the server's root, without ``/api``.
- **Key**: none needed locally. Ollama Cloud (``api_base="https://ollama.com"``)
  takes ``Authorization: Bearer``: the per-call ``api_key``, the adapter's, or
  ``OLLAMA_API_KEY`` when set.
- **Requests**: ``stream`` is always sent (Ollama streams when it is left out).
  OpenAI's parameters are mapped (``max_tokens`` to ``options.num_predict``,
  ``stop``, ``response_format`` to ``format``); ``tools``, ``think``,
  ``keep_alive``, ``format``, ``logprobs`` and ``top_logprobs`` go at the top
  level; every other parameter is a model option (``num_ctx``, ``top_k``,
  ``repeat_penalty``...) and goes into ``options``, as does an ``options`` dict.
  ``n``, ``tool_choice`` and ``parallel_tool_calls`` have no native
  counterpart: only the value Ollama always behaves as (1, ``"auto"``,
  ``True``) is accepted, anything else is an ``InvalidRequestError``.
- **Messages**: tool-call arguments go as objects; a ``tool`` message carries
  the ``tool_name`` of the call it answers; images must be inline
  (``data:...;base64,`` URLs) and go in ``images``; ``reasoning_content`` of
  an earlier reply goes back as ``thinking``.
- **Replies**: ``message.thinking`` is ``reasoning_content``; tool-call
  arguments come back as JSON strings, with Ollama's id when it sends one
  (Ollama Cloud does) or a stable id derived from the call; ``done_reason``
  ``stop`` with tool calls is ``finish_reason="tool_calls"``; usage is
  ``prompt_eval_count``/``eval_count``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
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
from providers._credentials import api_key, first_env
from providers._json import as_dict, as_list, floats, opt_dict, opt_int, opt_list, opt_str, req_str
from providers._lines import NDJSONParser
from providers.openai_compatible import CHAT_EMBEDDING, finish_reason

DEFAULT_BASE_URL = "http://localhost:11434"
BASE_URL_ENVS = ("OLLAMA_API_BASE", "OLLAMA_HOST")
KEY_ENV = "OLLAMA_API_KEY"

_PATHS: dict[str, str] = {"chat": "/api/chat", "embedding": "/api/embed"}
_ROLES: dict[str, str] = {"developer": "system", "function": "tool"}

# -- errors -----------------------------------------------------------------

# Phrases in Ollama's ``{"error": "..."}`` strings that name a precise error.
_MESSAGE_CLASSES: tuple[tuple[str, type[errors.DispatchError]], ...] = (
    ("context length", errors.ContextWindowExceededError),
    ("context window", errors.ContextWindowExceededError),
    ("does not support", errors.BadRequestError),  # "... does not support tools"
    ("not found", errors.NotFoundError),  # 'model "x" not found, try pulling it first'
)


def error_class(message: str, status: int | None) -> type[errors.DispatchError] | None:
    """The class an error string names; with a status, only one that refines the
    status's class (a context overflow is one whatever the status)."""
    lowered = message.lower()
    found = next((cls for phrase, cls in _MESSAGE_CLASSES if phrase in lowered), None)
    if found is None or status is None:
        return found
    if found is errors.ContextWindowExceededError:
        return found
    return found if issubclass(found, errors.error_class_for_status(status)) else None


def stream_error(
    request: Request, message: Any, secrets: tuple[str, ...] = ()
) -> errors.DispatchError:
    """An ``{"error": ...}`` line inside a stream (the status was already 200)."""
    text = message if isinstance(message, str) else json.dumps(message)
    cls = error_class(text, None) or errors.InternalServerError
    return cls(
        text,
        provider=request.provider,
        model=request.model,
        secrets=(*request.secrets(), *secrets),
    )


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, provider=request.provider, model=request.model)


# -- building requests --------------------------------------------------------


def server_url(value: str) -> str:
    """A base URL from ``OLLAMA_HOST``'s forms (``host``, ``host:port``, a URL)."""
    value = value.strip().rstrip("/")
    if "://" in value:
        return value
    hostport, _, path = value.partition("/")
    if ":" not in hostport.rsplit("]", 1)[-1]:  # no port (an IPv6 host is bracketed)
        hostport += ":11434"
    return f"http://{hostport}" + (f"/{path}" if path else "")


def _inline_image(request: Request, index: int, value: Any) -> str:
    url = value.get("url") if isinstance(value, Mapping) else value
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url.partition(",")
        if header.endswith(";base64") and data:
            return data
    raise _invalid(
        request,
        f"messages[{index}]: ollama takes images inline; pass a 'data:<type>;base64,...' URL",
    )


def _text_and_images(request: Request, index: int, content: Any) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_inline_image(request, index, part.get("image_url")))
        else:
            raise _invalid(
                request, f"messages[{index}]: ollama takes text and image_url parts, got {kind!r}"
            )
    return "\n".join(texts), images


def _tool_calls_out(
    request: Request, index: int, calls: Any, names: dict[str, str]
) -> list[dict[str, Any]]:
    """OpenAI's tool calls as Ollama takes them back: arguments as an object."""
    out: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if function is None or not isinstance(name, str):
            raise _invalid(request, f"messages[{index}].tool_calls[{position}] needs function.name")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = None
        if not isinstance(arguments, Mapping):
            raise _invalid(
                request,
                f"messages[{index}].tool_calls[{position}]: arguments must be a JSON object",
            )
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
        out.append({"function": {"index": position, "name": name, "arguments": dict(arguments)}})
    return out


def ollama_messages(request: Request) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool messages
    out: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        role = str(message.get("role"))
        role = _ROLES.get(role, role)
        text, images = _text_and_images(request, i, message.get("content"))
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        if message.get("tool_calls"):
            item["tool_calls"] = _tool_calls_out(request, i, message["tool_calls"], names)
        if message.get("reasoning_content"):
            item["thinking"] = message["reasoning_content"]
        if role == "tool":
            tool_name = message.get("name") or names.get(message.get("tool_call_id") or "")
            if tool_name:
                item["tool_name"] = tool_name
        out.append(item)
    return out


def _stop(request: Request, value: Any) -> Any:
    return [value] if isinstance(value, str) else list(value)


def _format(request: Request, value: Any) -> Any:
    """OpenAI's ``response_format`` as Ollama's ``format``: ``"json"`` or a JSON schema."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    schema = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and isinstance(schema, Mapping) and "schema" in schema:
        return schema["schema"]
    if kind == "text":
        return None
    raise _invalid(request, f"response_format {value!r} has no ollama equivalent")


def _options(request: Request, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _invalid(request, "options must be a dict of ollama model options")
    return value


# Parameters whose value changes on the way.
_CONVERT: dict[str, Callable[[Request, Any], Any]] = {
    "stop": _stop,
    "response_format": _format,
    "options": _options,
}
_RENAMED: dict[str, str] = {
    "response_format": "format",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
}
# OpenAI parameters with no native counterpart: only the value Ollama behaves as.
_FIXED: dict[str, Any] = {
    "n": 1,
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "encoding_format": "float",
}
_SERVED = frozenset({"stream_options"})  # usage is always in the last stream line

_TOP_LEVEL: dict[str, frozenset[str]] = {
    "chat": frozenset({"tools", "think", "keep_alive", "format", "logprobs", "top_logprobs"}),
    "embedding": frozenset({"truncate", "keep_alive", "dimensions"}),
}


def _place_params(request: Request, params: Mapping[str, Any], body: dict[str, Any]) -> None:
    """Each parameter to the top level or into ``options``, mapped as above."""
    top_level = _TOP_LEVEL[request.endpoint]
    options: dict[str, Any] = {}
    for key, given in params.items():
        if given is None or key in _SERVED:
            continue
        if key in _FIXED:
            if given != _FIXED[key]:
                raise _invalid(
                    request, f"ollama cannot honour {key}={given!r} (only {_FIXED[key]!r})"
                )
            continue
        value = _CONVERT[key](request, given) if key in _CONVERT else given
        name = _RENAMED.get(key, key)
        if value is None:
            continue
        if name == "options":
            options.update(value)
        elif name in top_level:
            body[name] = value
        else:
            options[name] = value
    if options:
        body["options"] = options


def _chat_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": ollama_messages(request),
        "stream": request.stream,
    }
    _place_params(request, params, body)
    return body


def _embed_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    given = request.input
    if not isinstance(given, str) and not (
        isinstance(given, list | tuple) and given and all(isinstance(t, str) for t in given)
    ):
        raise _invalid(request, "ollama embeds text: input must be a string or a list of strings")
    body: dict[str, Any] = {"model": request.model, "input": request.input}
    _place_params(request, params, body)
    return body


_BODIES: dict[str, Callable[[Request, Mapping[str, Any]], dict[str, Any]]] = {
    "chat": _chat_body,
    "embedding": _embed_body,
}

# -- reading replies ----------------------------------------------------------


def usage_from(data: dict[str, Any]) -> Usage:
    """Token counts from a final chat line, a ``/api/generate`` or ``/api/embed`` reply.
    Ollama leaves a zero count out."""
    prompt = opt_int(data, "prompt_eval_count") or 0
    completion = opt_int(data, "eval_count") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=opt_int(data, "prompt_eval_cached_count"),
    )


def finish_from(data: dict[str, Any], tool_calls: bool) -> str:
    """``done_reason`` as OpenAI's finish_reason; Ollama says ``stop`` even after tool calls."""
    reason = finish_reason(data.get("done_reason")) or "stop"
    return "tool_calls" if tool_calls and reason == "stop" else reason


def created_from(data: dict[str, Any]) -> int:
    """``created_at`` (RFC 3339, nanoseconds) as epoch seconds; 0 when absent or unreadable."""
    stamp = opt_str(data, "created_at")
    try:
        return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0
    except ValueError:
        return 0


def _stable_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\n{name}\n{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def tool_call(data: Any, index: int) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    name = req_str(function, "name")
    raw = function.get("arguments")
    arguments = raw if isinstance(raw, str) else json.dumps(as_dict(raw or {}, "arguments"))
    return ToolCall(
        id=opt_str(data, "id") or _stable_id(index, name, arguments),
        function=Function(name=name, arguments=arguments),
    )


def _done(data: dict[str, Any]) -> bool:
    done = data.get("done", False)
    if not isinstance(done, bool):
        raise TypeError("done should be a boolean")
    return done


class OllamaStreamDecoder:
    """NDJSON lines of chat objects; the last has ``done: true``, the reason and the counts."""

    __slots__ = ("_calls", "_done", "_lines", "_request", "_secrets", "_started")

    def __init__(self, request: Request, secrets: tuple[str, ...] = ()) -> None:
        self._request = request
        self._secrets = secrets  # kept out of error messages
        self._lines = NDJSONParser()
        self._calls = 0  # tool calls so far: each gets the next index
        self._started = False
        self._done = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream line"):
            return self._chunks(self._lines.feed(data))

    def close(self) -> list[ChatChunk]:
        with parsing(self._request, "stream line"):
            chunks = self._chunks(self._lines.close())
        if not self._done:
            raise errors.ProviderResponseError(
                f"{self._request.provider}'s stream ended before its last line (done: true)",
                provider=self._request.provider,
                model=self._request.model,
            )
        return chunks

    def _chunks(self, lines: list[Any]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for line in lines:
            if self._done:
                break
            data = as_dict(line, "stream line")
            if "error" in data:
                raise stream_error(self._request, data["error"], self._secrets)
            out.append(self._chunk(data))
        return out

    def _chunk(self, data: dict[str, Any]) -> ChatChunk:
        request = self._request
        message = opt_dict(data, "message") or {}
        calls = [
            tool_call(raw, self._calls + k) for k, raw in enumerate(opt_list(message, "tool_calls"))
        ]
        deltas = [
            ToolCallDelta(
                index=self._calls + k,
                id=call.id,
                type="function",
                function=FunctionDelta(name=call.function.name, arguments=call.function.arguments),
            )
            for k, call in enumerate(calls)
        ]
        self._calls += len(calls)
        done = _done(data)
        delta = Delta(
            role=None if self._started else "assistant",
            content=opt_str(message, "content") or None,
            reasoning_content=opt_str(message, "thinking") or None,
            tool_calls=deltas or None,
        )
        self._started = True
        self._done = done
        return ChatChunk(
            created=created_from(data),
            model=opt_str(data, "model") or request.model,
            provider=request.provider,
            choices=[
                ChunkChoice(
                    delta=delta,
                    finish_reason=finish_from(data, self._calls > 0) if done else None,
                )
            ],
            usage=usage_from(data) if done else None,
        )


def _parse_chat(request: Request, response: httpx.Response) -> ChatResponse:
    data = as_dict(read_json(request, response), "chat response")
    message = as_dict(data["message"], "message")
    calls = [tool_call(raw, i) for i, raw in enumerate(opt_list(message, "tool_calls"))]
    content = opt_str(message, "content")
    return ChatResponse(
        created=created_from(data),
        model=opt_str(data, "model") or request.model,
        choices=[
            Choice(
                message=Message(
                    content=(content or None) if calls else content,
                    tool_calls=calls or None,
                    reasoning_content=opt_str(message, "thinking") or None,
                ),
                finish_reason=finish_from(data, bool(calls)),
            )
        ],
        usage=usage_from(data),
    )


def _parse_embedding(request: Request, response: httpx.Response) -> EmbeddingResponse:
    data = as_dict(read_json(request, response), "embedding response")
    vectors = as_list(data["embeddings"], "embeddings")
    prompt = opt_int(data, "prompt_eval_count") or 0
    return EmbeddingResponse(
        model=opt_str(data, "model") or request.model,
        data=[Embedding(index=i, embedding=floats(v)) for i, v in enumerate(vectors)],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt),
    )


_PARSERS: dict[str, Callable[[Request, httpx.Response], AnyResponse]] = {
    "chat": _parse_chat,
    "embedding": _parse_embedding,
}

# -- the adapter ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Ollama:
    """An Ollama server, through its native API. See the module docstring."""

    name: str = "ollama"
    base_url: str | None = None
    api_key: Secret | None = attrs.field(default=None, repr=False)
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    priority: int = 0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    def url(self, request: Request) -> str:
        base = request.api_base or self.base_url
        if not base:
            found = first_env(BASE_URL_ENVS)
            base = server_url(found) if found else DEFAULT_BASE_URL
        return base.rstrip("/") + _PATHS[request.endpoint]

    def key(self, request: Request) -> str | None:
        """Optional: per call, else configured, else ``OLLAMA_API_KEY`` (Ollama Cloud)."""
        return api_key(request, self.api_key, (KEY_ENV,), required=False)

    def build(self, request: Request) -> httpx.Request:
        params = dict(request.params)
        extra_headers: Mapping[str, str] = params.pop("extra_headers", None) or {}
        extra_body: Mapping[str, Any] = params.pop("extra_body", None) or {}
        body = _BODIES[request.endpoint](request, params)
        body.update(extra_body)
        key = self.key(request)
        auth = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Request(
            "POST", self.url(request), json=body, headers={**auth, **extra_headers}
        )

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, response)

    def stream_decoder(self, request: Request) -> OllamaStreamDecoder:
        key = self.key(request)
        return OllamaStreamDecoder(request, (key,) if key else ())

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        message = body.get("error") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = response.text[:500]
        message = scrub(message, [self.key(request)])  # a key the server echoed
        return status_error(
            request, response, message, cls=error_class(message, response.status_code)
        )


OLLAMA = Ollama()
