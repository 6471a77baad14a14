"""The OpenAI wire format: one adapter for OpenAI and every provider that speaks it.

A provider that speaks OpenAI's API is a configured :class:`OpenAICompatible`:
its base URL, key variable, headers, capabilities and auto-detect prefixes.
What differs between such providers in their replies is read generically here
(usage under ``x_groq``, usage without ``stream_options``, reasoning as
``reasoning`` or ``reasoning_content``, content as a list of parts), so no
provider needs a branch of its own.

Choices worth knowing:

- Embeddings: nothing is added to the request, so the server answers with
  float arrays (as every compatible server does). Pass
  ``encoding_format="base64"`` for bodies about half the size; either way the
  response holds plain ``list[float]`` vectors (base64 is decoded here).
- Transcription: ``file`` is audio bytes, ``(filename, bytes)`` or
  ``(filename, bytes, content_type)``. Bare bytes get a filename whose
  extension is sniffed from the audio's magic bytes (OpenAI picks the decoder
  by extension); list parameters are sent as repeated ``name[]`` fields.
- Parameters whose names are in :attr:`OpenAICompatible.control_params`
  (``extra_headers``) shape the HTTP request, never the JSON body;
  ``extra_body`` (as in the openai SDK) is merged into the body last.
- A base URL may hold ``{ENV_NAME}`` placeholders (an account id, say), filled
  from the environment when the request is built.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from array import array
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

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
from pipeline.adapter import parsing, read_json, status_error, timeout_extensions
from providers._credentials import api_key
from providers._json import as_dict, as_list, floats, opt_dict, opt_int, opt_list, opt_str, req_str
from providers._lines import SSEParser

ALL_ENDPOINTS: frozenset[Endpoint] = frozenset(
    {"chat", "embedding", "image", "transcription", "speech"}
)
CHAT: frozenset[Endpoint] = frozenset({"chat"})
CHAT_EMBEDDING: frozenset[Endpoint] = frozenset({"chat", "embedding"})

_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "embedding": "/embeddings",
    "image": "/images/generations",
    "transcription": "/audio/transcriptions",
    "speech": "/audio/speech",
}

# Finish reasons outside OpenAI's set, as some compatible providers send them.
_FINISH: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "eos": "stop",
    "end_turn": "stop",
    "model_length": "length",
    "max_tokens": "length",
    "tool_call": "tool_calls",
    "error": "stop",
}

# error.code / error.type values that name a more specific error than the status.
_ERROR_CODES: dict[str, type[errors.DispatchError]] = {
    "context_length_exceeded": errors.ContextWindowExceededError,
    "string_above_max_length": errors.ContextWindowExceededError,
    "content_filter": errors.ContentPolicyViolationError,
    "content_policy_violation": errors.ContentPolicyViolationError,
    "ResponsibleAIPolicyViolation": errors.ContentPolicyViolationError,
    "invalid_api_key": errors.AuthenticationError,
    "insufficient_quota": errors.RateLimitError,
    "rate_limit_exceeded": errors.RateLimitError,
    "model_not_found": errors.NotFoundError,
    "server_error": errors.InternalServerError,
}
# Codes that no retry can fix even though their class is retryable.
_NOT_RETRYABLE = frozenset({"insufficient_quota"})

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _index(data: dict[str, Any], position: int) -> int:
    """An item's ``index``, or its position when the server leaves it out (0 is an index)."""
    index = opt_int(data, "index")
    return position if index is None else index


def finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("finish_reason should be a string")
    return _FINISH.get(value.lower(), "stop")


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    if data is None:
        return None
    prompt = opt_int(data, "prompt_tokens") or 0
    completion = opt_int(data, "completion_tokens") or 0
    details = opt_dict(data, "completion_tokens_details") or {}
    prompt_details = opt_dict(data, "prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=opt_int(data, "total_tokens") or prompt + completion,
        reasoning_tokens=opt_int(details, "reasoning_tokens"),
        cached_tokens=opt_int(prompt_details, "cached_tokens"),
    )


def _text_and_reasoning(content: Any) -> tuple[str | None, str | None]:
    """Content as a string, or as a list of parts (Mistral's thinking parts among them)."""
    if content is None or isinstance(content, str):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for part in as_list(content, "content"):
        part = as_dict(part, "content part")
        kind = part.get("type")
        if kind == "text":
            text.append(req_str(part, "text"))
        elif kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            else:
                thinking.extend(req_str(as_dict(p), "text") for p in as_list(inner, "thinking"))
    return "".join(text) if text else None, "".join(thinking) if thinking else None


def _reasoning(data: dict[str, Any]) -> str | None:
    return opt_str(data, "reasoning_content") or opt_str(data, "reasoning")


def _tool_call(data: Any) -> ToolCall:
    data = as_dict(data, "tool call")
    function = as_dict(data["function"], "function")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # some servers send an object
        arguments = json.dumps(as_dict(arguments or {}, "arguments"))
    return ToolCall(
        id=opt_str(data, "id") or "",
        type=opt_str(data, "type") or "function",
        function=Function(name=req_str(function, "name"), arguments=arguments),
    )


def chat_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "chat completion")
    choices = []
    for i, raw in enumerate(as_list(data["choices"], "choices")):
        raw = as_dict(raw, "choice")
        message = as_dict(raw["message"], "message")
        content, thinking = _text_and_reasoning(message.get("content"))
        calls = [_tool_call(call) for call in opt_list(message, "tool_calls")]
        choices.append(
            Choice(
                index=_index(raw, i),
                message=Message(
                    role=opt_str(message, "role") or "assistant",
                    content=content,
                    tool_calls=calls or None,
                    reasoning_content=_reasoning(message) or thinking,
                    refusal=opt_str(message, "refusal"),
                ),
                finish_reason=finish_reason(raw.get("finish_reason")) or "stop",
            )
        )
    usage = opt_dict(data, "usage") or opt_dict(opt_dict(data, "x_groq") or {}, "usage")
    return ChatResponse(
        id=opt_str(data, "id") or "",
        created=opt_int(data, "created") or 0,
        model=opt_str(data, "model") or request.model,
        choices=choices,
        usage=usage_from(usage),
        system_fingerprint=opt_str(data, "system_fingerprint"),
    )


def _tool_call_delta(data: Any) -> ToolCallDelta:
    data = as_dict(data, "tool call delta")
    function = opt_dict(data, "function")
    arguments = function.get("arguments") if function else None
    if arguments is not None and not isinstance(arguments, str):
        arguments = json.dumps(as_dict(arguments, "arguments"))
    return ToolCallDelta(
        index=opt_int(data, "index") or 0,
        id=opt_str(data, "id"),
        type=opt_str(data, "type"),
        function=(
            FunctionDelta(name=opt_str(function, "name"), arguments=arguments)
            if function is not None
            else None
        ),
    )


def chat_chunk(request: Request, data: Any) -> ChatChunk | None:
    """One streamed chunk, or None for an event that carries nothing (Azure's filter-only one)."""
    data = as_dict(data, "chunk")
    choices = []
    for i, raw in enumerate(opt_list(data, "choices")):
        raw = as_dict(raw, "choice")
        delta = opt_dict(raw, "delta") or {}
        content, thinking = _text_and_reasoning(delta.get("content"))
        calls = [_tool_call_delta(call) for call in opt_list(delta, "tool_calls")]
        choices.append(
            ChunkChoice(
                index=_index(raw, i),
                delta=Delta(
                    role=opt_str(delta, "role"),
                    content=content,
                    tool_calls=calls or None,
                    reasoning_content=_reasoning(delta) or thinking,
                    refusal=opt_str(delta, "refusal"),
                ),
                finish_reason=finish_reason(raw.get("finish_reason")),
            )
        )
    usage = usage_from(opt_dict(data, "usage") or opt_dict(opt_dict(data, "x_groq") or {}, "usage"))
    if not choices and usage is None:
        return None
    return ChatChunk(
        id=opt_str(data, "id") or "",
        created=opt_int(data, "created") or 0,
        model=opt_str(data, "model") or request.model,
        provider=request.provider,
        choices=choices,
        usage=usage,
        system_fingerprint=opt_str(data, "system_fingerprint"),
    )


def _error_names(inner: dict[str, Any], code: str | None) -> list[str]:
    """What an error calls itself: its ``code``, ``type`` and (Azure) ``innererror.code``."""
    nested = inner.get("innererror")
    candidates = (code, inner.get("type"), nested.get("code") if isinstance(nested, dict) else None)
    return [name for name in candidates if isinstance(name, str)]


def error_from_body(request: Request, response: httpx.Response, body: Any) -> errors.DispatchError:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``, or the
    looser shapes compatible servers send (``{"error": "..."}``, ``{"message": ...}``)."""
    message = ""
    code: str | None = None
    names: list[str] = []
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = str(inner.get("message") or "")
            raw_code = inner.get("code")
            code = str(raw_code) if raw_code is not None else None
            names = _error_names(inner, code)
        elif isinstance(inner, str):
            message = inner
    elif isinstance(body, str):
        message = body[:500]
    cls = next((_ERROR_CODES[name] for name in names if name in _ERROR_CODES), None)
    if cls is None and "maximum context length" in message:
        cls = errors.ContextWindowExceededError
    if (
        cls is not None
        and response.status_code >= 500
        and not issubclass(cls, errors.InternalServerError)
    ):
        cls = None  # a server error's status says more than its code
    error = status_error(request, response, message, cls=cls, code=code)
    if _NOT_RETRYABLE.intersection(names):
        error.retryable = False
    return error


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """A JSON body; ``extra_body`` (as in the openai SDK) is merged in last."""
    extra = body.pop("extra_body", None)
    if extra:
        body.update(extra)
    return {"json": body}


def _decode_base64_floats(value: str) -> list[float]:
    values = array("f")
    values.frombytes(base64.b64decode(value))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        values.byteswap()
    return values.tolist()


class OpenAIStreamDecoder:
    """SSE ``data:`` events of chat-completion chunks, ending in ``[DONE]``."""

    __slots__ = ("_done", "_events", "_request", "_seen")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._events = SSEParser()
        self._done = False
        self._seen = False

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream"):
            events = self._events.feed(data)
        return self._chunks(events)

    def close(self) -> list[ChatChunk]:
        """The body ended. Ending without ``[DONE]`` is accepted (some servers omit
        it); ending without a single event is not: that body was not a stream."""
        with parsing(self._request, "stream"):
            events = self._events.close()
        out = self._chunks(events)
        if not self._seen:
            raise errors.ProviderResponseError(
                f"{self._request.provider} ended a stream without sending any event",
                provider=self._request.provider,
                model=self._request.model,
            )
        return out

    def _chunks(self, events: list[Any]) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        request = self._request
        for event in events:
            self._seen = True
            if self._done:
                break
            if event.data == "[DONE]":
                self._done = True
                break
            with parsing(request, "stream event"):
                data = json.loads(event.data)
                if isinstance(data, dict) and "error" in data:
                    raise _stream_error(request, data)
                chunk = chat_chunk(request, data)
            if chunk is not None:
                out.append(chunk)
        return out


def _stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    inner = data["error"]
    message = str(inner.get("message", inner) if isinstance(inner, dict) else inner)
    code = inner.get("code") if isinstance(inner, dict) else None
    cls = _ERROR_CODES.get(str(code or ""), errors.InternalServerError)
    return cls(
        message,
        provider=request.provider,
        model=request.model,
        code=str(code) if code is not None else None,
        secrets=request.secrets(),
    )


@attrs.frozen(kw_only=True)
class OpenAICompatible:
    """One OpenAI-compatible provider. A row of the table is one of these.

    - ``base_url``: up to and including the version segment (``.../v1``); it
      may hold ``{ENV_NAME}`` placeholders, filled from the environment;
    - ``base_url_env``: an environment variable that, when set, replaces
      ``base_url`` (a per-call ``api_base`` wins over both);
    - ``key_env``: the environment variable holding the key (None: no key,
      as for local servers); ``api_key`` configures one in code instead;
    - ``headers``: sent with every request; ``endpoints``: what it offers;
    - ``timeout``: default seconds per request (None: the pipeline's);
    - ``models``/``prefixes``/``priority``: bare model names it claims;
    - ``stream_usage``: ask for usage in streams (``stream_options``); off
      for servers that reject the option;
    - ``transport``: its own httpx transport instead of the pipeline's pool.

    Subclasses change how a request is addressed and authenticated by
    overriding :meth:`url`, :meth:`auth_headers` and :meth:`model_field`
    (Azure does); the body builders and parsers stay shared.
    """

    # Parameters that shape the HTTP request rather than the JSON body.
    control_params: ClassVar[frozenset[str]] = frozenset({"extra_headers"})

    name: str
    base_url: str
    base_url_env: str | None = None
    key_env: str | None = None
    api_key: Secret | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = _EMPTY
    endpoints: frozenset[Endpoint] = CHAT
    timeout: float | None = None
    priority: int = 0
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    stream_usage: bool = True
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    # -- credentials and URLs ----------------------------------------------

    def key(self, request: Request) -> str | None:
        """Per call, else configured, else the environment; raises if required and absent."""
        env = (self.key_env,) if self.key_env else ()
        return api_key(request, self.api_key, env, required=bool(env), provider=self.name)

    def auth_headers(self, request: Request) -> dict[str, str]:
        key = self.key(request)
        return {"authorization": f"Bearer {key}"} if key else {}

    def base(self, request: Request) -> str:
        """Per-call ``api_base``, else ``base_url_env`` when set, else ``base_url``."""
        if request.api_base:
            return request.api_base.rstrip("/")
        if self.base_url_env:
            value = os.environ.get(self.base_url_env)
            if value:
                return value.rstrip("/")
        return fill_env(self.base_url, request).rstrip("/")

    def url(self, request: Request) -> str:
        return self.base(request) + _PATHS[request.endpoint]

    def model_field(self, request: Request) -> dict[str, str]:
        """The ``model`` the body names (a subclass that addresses the model in
        its URL may leave it out)."""
        return {"model": request.model}

    # -- build -------------------------------------------------------------

    def build(self, request: Request) -> httpx.Request:
        params = {k: v for k, v in request.params.items() if k not in self.control_params}
        extra_headers = request.params.get("extra_headers") or {}
        headers = {**self.headers, **self.auth_headers(request), **extra_headers}
        content = _BODIES[request.endpoint](self, request, params)
        return httpx.Request(
            "POST",
            self.url(request),
            headers=headers,
            extensions=timeout_extensions(self.timeout),
            **content,
        )

    def _chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.model_field(request),
            "messages": list(request.messages),
            **params,
        }
        if request.stream:
            body["stream"] = True
            if self.stream_usage:
                body.setdefault("stream_options", {"include_usage": True})
        return _json(body)

    def _input_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return _json({**self.model_field(request), "input": request.input, **params})

    def _image_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return _json({**self.model_field(request), "prompt": request.input, **params})

    def _transcription_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """Multipart: the audio file plus form fields."""
        params.pop("extra_body", None)
        fields: dict[str, str | list[str]] = dict(self.model_field(request))
        for name, value in params.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                fields[f"{name}[]"] = [_form_value(item) for item in value]
            else:
                fields[name] = _form_value(value)
        return {"files": {"file": audio_upload(request.input)}, "data": fields}

    # -- parse -------------------------------------------------------------

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](self, request, response)

    def _parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        return chat_response(request, read_json(request, response))

    def _parse_embedding(self, request: Request, response: httpx.Response) -> EmbeddingResponse:
        data = as_dict(read_json(request, response))
        items = []
        for i, raw in enumerate(as_list(data["data"], "data")):
            raw = as_dict(raw)
            vector = raw["embedding"]
            items.append(
                Embedding(
                    index=_index(raw, i),
                    embedding=(
                        _decode_base64_floats(vector) if isinstance(vector, str) else floats(vector)
                    ),
                )
            )
        return EmbeddingResponse(
            model=opt_str(data, "model") or request.model,
            data=items,
            usage=usage_from(opt_dict(data, "usage")),
        )

    def _parse_image(self, request: Request, response: httpx.Response) -> ImageResponse:
        data = as_dict(read_json(request, response))
        images = [
            Image(
                url=opt_str(item, "url"),
                b64_json=opt_str(item, "b64_json"),
                revised_prompt=opt_str(item, "revised_prompt"),
            )
            for item in map(as_dict, as_list(data["data"], "data"))
        ]
        return ImageResponse(
            model=request.model, created=opt_int(data, "created") or 0, data=images
        )

    def _parse_transcription(
        self, request: Request, response: httpx.Response
    ) -> TranscriptionResponse:
        if "json" not in response.headers.get("content-type", ""):
            return TranscriptionResponse(model=request.model, text=response.text)
        data = as_dict(read_json(request, response))
        duration = data.get("duration")
        return TranscriptionResponse(
            model=request.model,
            text=req_str(data, "text"),
            language=opt_str(data, "language"),
            duration=float(duration) if isinstance(duration, (int, float)) else None,
        )

    def _parse_speech(self, request: Request, response: httpx.Response) -> SpeechResponse:
        return SpeechResponse(
            model=request.model,
            content=response.content,
            content_type=response.headers.get("content-type", "application/octet-stream"),
        )

    # -- streams and errors ------------------------------------------------

    def stream_decoder(self, request: Request) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = response.text
        return error_from_body(request, response, body)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_env(template: str, request: Request) -> str:
    """``template`` with each ``{NAME}`` replaced by the environment variable NAME;
    an unset one is an :class:`errors.InvalidRequestError` naming it, before any I/O."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if not found:
            raise errors.InvalidRequestError(
                f"{request.provider} needs {match.group(1)} set (it is part of the "
                f"base URL {template}), or pass api_base=",
                provider=request.provider,
                model=request.model,
            )
        return found

    return _PLACEHOLDER.sub(value, template)


# Leading bytes of the audio formats OpenAI's transcription endpoint accepts,
# so bare bytes get a filename with the extension its decoder goes by.
_AUDIO_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"),
    (0, b"\xff\xf2", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),
    (4, b"ftyp", "m4a"),
    (8, b"WAVE", "wav"),
)


def audio_upload(file: Any) -> tuple[Any, ...]:
    """The multipart ``file`` part: a tuple as given, or bytes named by their format."""
    if isinstance(file, tuple):
        return file
    data = bytes(file)
    for offset, magic, extension in _AUDIO_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return (f"audio.{extension}", data)
    return ("audio", data)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


_BODIES: dict[str, Callable[[OpenAICompatible, Request, dict[str, Any]], dict[str, Any]]] = {
    "chat": OpenAICompatible._chat_body,
    "embedding": OpenAICompatible._input_body,
    "image": OpenAICompatible._image_body,
    "transcription": OpenAICompatible._transcription_body,
    "speech": OpenAICompatible._input_body,
}

_PARSERS: dict[str, Callable[[OpenAICompatible, Request, httpx.Response], AnyResponse]] = {
    "chat": OpenAICompatible._parse_chat,
    "embedding": OpenAICompatible._parse_embedding,
    "image": OpenAICompatible._parse_image,
    "transcription": OpenAICompatible._parse_transcription,
    "speech": OpenAICompatible._parse_speech,
}
