"""Google's Gemini API (AI Studio, ``generativelanguage`` v1beta), natively.

Requests and replies keep OpenAI's shape on our side; this module converts.

- **URLs**: ``{api_base}/{api_version}/models/{model}:generateContent``;
  streams use ``:streamGenerateContent?alt=sse``; embeddings use
  ``:batchEmbedContents`` for a list input and ``:embedContent`` for one string.
  The default base is ``https://generativelanguage.googleapis.com`` and the
  default version ``v1beta`` (``api_version="v1"`` picks the stable surface).
  A model named with a slash (``tunedModels/my-model``) is used as the path as is.
- **Key**: the ``x-goog-api-key`` header, from ``api_key=``, else the adapter's
  configured key, else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``.
- **Messages**: system and developer messages are lifted, in order, into
  ``systemInstruction``; user and assistant become ``user``/``model`` contents;
  image parts (``data:`` URLs become ``inlineData``, other URLs ``fileData``),
  ``input_audio`` and ``file`` parts (``file_data`` as a ``data:`` URL) are
  converted; assistant ``tool_calls`` become ``functionCall`` parts (arguments
  parsed into ``args``); consecutive ``tool`` messages become one ``user``
  content of ``functionResponse`` parts, named after the assistant call with
  the same id, with the tool's text sent as ``{"output": text}``.
- **Parameters**: ``temperature``, ``top_p``, ``top_k``, ``max_tokens`` /
  ``max_completion_tokens``, ``stop``, ``n``, ``seed``, ``presence_penalty``,
  ``frequency_penalty`` and ``response_format`` go into ``generationConfig``
  (a JSON schema is sent as ``responseJsonSchema``, which takes JSON Schema
  as OpenAI users write it; ``responseSchema`` takes only an OpenAPI subset).
  ``tools`` become one ``functionDeclarations`` tool (``parameters`` sent as
  given); ``tool_choice`` becomes ``toolConfig.functionCallingConfig``. Any
  other parameter is a Gemini field sent as is (``safetySettings``,
  ``cachedContent``...), and a ``generationConfig`` parameter is merged under
  the converted entries (``generationConfig={"thinkingConfig":
  {"includeThoughts": True}}`` asks for thought summaries, which arrive as
  ``reasoning_content``). ``logprobs``, ``top_logprobs``, ``logit_bias`` and
  ``parallel_tool_calls=False`` have no Gemini equivalent here and are refused
  before any I/O.
- **Tool call ids**: Gemini gives none, so each call gets a stable id derived
  from the response id, candidate, position, name and arguments.
- **Thought signatures**: a ``functionCall`` part may carry a
  ``thoughtSignature`` that must go back with the call on the next turn. It
  rides in the tool call id, which every OpenAI-shaped client already sends
  back: ``call_<24 hex>__ts_<signature as unpadded URL-safe base64>``. When the
  assistant message is sent again the signature is read back out of the id
  (padded, URL-safe, as Google's own SDK sends it). A tool call that carries
  ``extra_content.google.thought_signature`` (the shape of Google's
  OpenAI-compatible endpoint) is honoured too, and wins. Signatures on text
  parts, which Gemini accepts back but does not require, are not kept.
- **Replies**: text parts are ``content``, ``thought: true`` parts are
  ``reasoning_content``; ``finishReason`` maps STOP to ``stop`` (``tool_calls``
  when the candidate called functions), MAX_TOKENS to ``length``, the safety
  reasons to ``content_filter``, anything else to ``stop``. Usage: prompt =
  ``promptTokenCount``, completion = ``candidatesTokenCount`` +
  ``thoughtsTokenCount``, reasoning = ``thoughtsTokenCount``. A prompt blocked
  by ``promptFeedback`` is a ContentPolicyViolationError. Parts of other kinds
  (generated images, code execution) are not represented. Gemini sends no
  timestamp, so ``created`` is 0; ``model`` is the reply's ``modelVersion``.
- **Streams**: each event is a whole ``GenerateContentResponse``; text arrives
  as content deltas and each function call whole (id, name and all its
  arguments in one delta). Usage is cumulative in Gemini's events, so it is
  sent once, in a last chunk with no choices, as OpenAI does with
  ``include_usage``. The decoder also reads the framing used without
  ``alt=sse`` (a streamed JSON array), choosing by the body's first byte.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
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
from pipeline._secrets import Secret
from pipeline.adapter import parsing, read_json, status_error, timeout_extensions
from providers._credentials import api_key
from providers._json import as_dict, as_list, floats, opt_dict, opt_int, opt_list, opt_str
from providers._lines import JSONArraySplitter, SSEParser
from providers.openai_compatible import CHAT_EMBEDDING

BASE_URL = "https://generativelanguage.googleapis.com"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

_EMPTY: Mapping[str, str] = MappingProxyType({})

# -- tool call ids and thought signatures -----------------------------------

_SIGNATURE_MARK = "__ts_"
_OWN_ID = re.compile(r"call_[0-9a-f]{24}__ts_([A-Za-z0-9_-]+)")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+=*")


def tool_call_id(
    response_id: str, candidate: int, position: int, name: str, args: Any, signature: str | None
) -> str:
    """A stable id for a Gemini function call, carrying its thought signature if any."""
    seed = json.dumps([response_id, candidate, position, name, args], sort_keys=True)
    call_id = "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
    if signature is None:
        return call_id
    if not _BASE64.fullmatch(signature):
        raise ValueError("thoughtSignature should be base64")
    safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return call_id + _SIGNATURE_MARK + safe


def _signature_in(call: Mapping[str, Any]) -> str | None:
    """The thought signature to send back with an assistant tool call, if it has one."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    explicit = google.get("thought_signature") if isinstance(google, Mapping) else None
    if isinstance(explicit, str) and explicit:
        return explicit
    found = _OWN_ID.fullmatch(str(call.get("id") or ""))
    if found is None:
        return None
    safe = found.group(1)
    return safe + "=" * (-len(safe) % 4)


# -- request conversion -------------------------------------------------------


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        f"{request.provider}: {message}", provider=request.provider, model=request.model
    )


def _data_url(request: Request, url: str, where: str) -> dict[str, Any]:
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise _invalid(request, f"{where}: a data: URL must be base64 (data:<type>;base64,...)")
    return {"inlineData": {"mimeType": head[len("data:") : -len(";base64")], "data": data}}


def _media_url(request: Request, url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise _invalid(request, f"{where}: needs a URL")
    if url.startswith("data:"):
        return _data_url(request, url, where)
    file_data: dict[str, Any] = {"fileUri": url}
    guessed, _ = mimetypes.guess_type(url)
    if guessed:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _image_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    return _media_url(request, url, where)


def _audio_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    audio = part.get("input_audio")
    if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
        raise _invalid(request, f"{where}: input_audio needs base64 data and a format")
    return {
        "inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio["data"]}
    }


def _file_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise _invalid(request, f"{where}: a file part needs file_data as a data: URL")
    return _data_url(request, data, where)


def _text_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(request, f"{where}: a text part needs text")
    return {"text": text}


_PART_CONVERTERS: dict[str, Callable[[Request, Mapping[str, Any], str], dict[str, Any]]] = {
    "text": _text_part,
    "image_url": _image_part,
    "input_audio": _audio_part,
    "file": _file_part,
}


def _parts(request: Request, content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for k, part in enumerate(content or ()):
        kind = part.get("type") if isinstance(part, Mapping) else None
        convert = _PART_CONVERTERS.get(kind) if isinstance(kind, str) else None
        if convert is None:
            raise _invalid(
                request,
                f"{where}.content[{k}]: unsupported part type {kind!r} "
                f"(supported: {', '.join(_PART_CONVERTERS)})",
            )
        parts.append(convert(request, part, f"{where}.content[{k}]"))
    return parts


def _plain_text(request: Request, content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in _parts(request, content, where) if "text" in part)


def _function_call_part(request: Request, call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise _invalid(request, f"{where}: a tool call needs function.name")
    raw = function.get("arguments") if isinstance(function, Mapping) else None
    try:
        args = json.loads(raw) if isinstance(raw, str) and raw.strip() else (raw or {})
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise _invalid(request, f"{where}: function.arguments must be a JSON object")
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    signature = _signature_in(call)
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


class _Conversation:
    """Builds ``contents`` and ``systemInstruction`` from OpenAI-shaped messages."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.system: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []
        self._names: dict[str, str] = {}  # tool call id -> function name
        self._last_was_tool = False

    def add(self, index: int, message: Mapping[str, Any]) -> None:
        role = message.get("role")
        convert = _ROLE_CONVERTERS.get(role) if isinstance(role, str) else None
        if convert is None:
            raise _invalid(self.request, f"messages[{index}]: unsupported role {role!r}")
        was_tool = self._last_was_tool
        self._last_was_tool = False
        convert(self, f"messages[{index}]", message, was_tool)

    def _system(self, where: str, message: Mapping[str, Any], _: bool) -> None:
        self.system.extend(_parts(self.request, message.get("content"), where))

    def _user(self, where: str, message: Mapping[str, Any], _: bool) -> None:
        self.contents.append(
            {"role": "user", "parts": _parts(self.request, message.get("content"), where)}
        )

    def _assistant(self, where: str, message: Mapping[str, Any], _: bool) -> None:
        content = message.get("content")
        parts = _parts(self.request, content, where) if content is not None else []
        calls = message.get("tool_calls") or ()
        for k, call in enumerate(calls):
            part = _function_call_part(self.request, call, f"{where}.tool_calls[{k}]")
            if isinstance(call.get("id"), str):
                self._names[call["id"]] = part["functionCall"]["name"]
            parts.append(part)
        legacy = message.get("function_call")
        if legacy is not None:
            parts.append(_function_call_part(self.request, {"function": legacy}, where))
        self.contents.append({"role": "model", "parts": parts})

    def _tool(self, where: str, message: Mapping[str, Any], after_tool: bool) -> None:
        call_id = message.get("tool_call_id")
        name = self._names.get(call_id) if isinstance(call_id, str) else None
        name = name or message.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(
                self.request,
                f"{where}: no earlier assistant tool call has id {call_id!r}, "
                "and the message has no name",
            )
        text = _plain_text(self.request, message.get("content"), where)
        part = {"functionResponse": {"name": name, "response": {"output": text}}}
        if after_tool:
            self.contents[-1]["parts"].append(part)
        else:
            self.contents.append({"role": "user", "parts": [part]})
        self._last_was_tool = True


_ROLE_CONVERTERS: dict[str, Callable[[_Conversation, str, Mapping[str, Any], bool], None]] = {
    "system": _Conversation._system,
    "developer": _Conversation._system,
    "user": _Conversation._user,
    "assistant": _Conversation._assistant,
    "tool": _Conversation._tool,
    "function": _Conversation._tool,
}


def _tools(request: Request, tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for k, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _invalid(request, f"tools[{k}] must be a function tool with a name")
        declaration = {"name": function["name"]}
        declaration.update({f: function[f] for f in ("description", "parameters") if f in function})
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _tool_choice(request: Request, choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise _invalid(
            request,
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}",
        )
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def _response_format(request: Request, value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    schema = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind == "json_schema" and isinstance(schema, Mapping) and "schema" in schema:
        return {"responseMimeType": "application/json", "responseJsonSchema": schema["schema"]}
    raise _invalid(
        request,
        "response_format must be {'type': 'text' | 'json_object'} or "
        "{'type': 'json_schema', 'json_schema': {'schema': ...}}",
    )


def _renamed(name: str) -> Callable[[Request, Any], dict[str, Any]]:
    return lambda request, value: {name: value}


def _stop(request: Request, value: Any) -> dict[str, Any]:
    return {"stopSequences": [value] if isinstance(value, str) else list(value)}


# OpenAI parameter -> the generationConfig entries it becomes.
_GENERATION: dict[str, Callable[[Request, Any], dict[str, Any]]] = {
    "temperature": _renamed("temperature"),
    "top_p": _renamed("topP"),
    "top_k": _renamed("topK"),
    "max_tokens": _renamed("maxOutputTokens"),
    "max_completion_tokens": _renamed("maxOutputTokens"),
    "stop": _stop,
    "n": _renamed("candidateCount"),
    "seed": _renamed("seed"),
    "presence_penalty": _renamed("presencePenalty"),
    "frequency_penalty": _renamed("frequencyPenalty"),
    "response_format": _response_format,
}

_UNSUPPORTED = frozenset({"logprobs", "top_logprobs", "logit_bias"})


def _check_supported(request: Request, params: Mapping[str, Any]) -> None:
    for name in _UNSUPPORTED.intersection(params):
        if params[name] is not None and params[name] is not False:
            raise _invalid(request, f"{name} is not supported for Gemini")
    if params.get("parallel_tool_calls") is False:
        raise _invalid(request, "Gemini cannot turn parallel tool calls off")


# Parameters read by the chat body builder itself, never passed through.
_CHAT_OWN = frozenset(
    {*_GENERATION, *_UNSUPPORTED, "tools", "tool_choice", "generationConfig"}
    | {"parallel_tool_calls", "stream_options"}  # honoured: Gemini always sends usage
)


def _chat_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    _check_supported(request, params)
    conversation = _Conversation(request)
    for i, message in enumerate(request.messages):
        conversation.add(i, message)
    body: dict[str, Any] = {"contents": conversation.contents}
    if conversation.system:
        body["systemInstruction"] = {"parts": conversation.system, "role": "user"}
    if params.get("tools"):
        body["tools"] = _tools(request, params["tools"])
    if params.get("tool_choice") is not None:
        tool_config = dict(params.get("toolConfig") or {})
        tool_config["functionCallingConfig"] = _tool_choice(request, params["tool_choice"])
        params["toolConfig"] = tool_config
    generation = params.get("generationConfig")
    config: dict[str, Any] = dict(generation or {})
    for name, convert in _GENERATION.items():
        if params.get(name) is not None:
            config.update(convert(request, params[name]))
    if config or generation is not None:
        body["generationConfig"] = config
    body.update({k: v for k, v in params.items() if k not in _CHAT_OWN and v is not None})
    return body


def _model_path(request: Request) -> str:
    return request.model if "/" in request.model else f"models/{request.model}"


_EMBEDDING_NAMES = {"dimensions": "outputDimensionality"}


def _embedding_entry(request: Request, text: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """One EmbedContentRequest; ``dimensions`` is renamed, Gemini fields pass as given."""
    if not isinstance(text, str):
        raise _invalid(request, "embedding input must be text (token ids are not supported)")
    if params.get("encoding_format") not in (None, "float"):
        raise _invalid(request, "Gemini returns float embeddings only")
    entry: dict[str, Any] = {"model": _model_path(request), "content": {"parts": [{"text": text}]}}
    entry.update(
        {
            _EMBEDDING_NAMES.get(name, name): value
            for name, value in params.items()
            if value is not None and name != "encoding_format"
        }
    )
    return entry


def _embedding_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(request.input, str):
        return _embedding_entry(request, request.input, params)
    return {"requests": [_embedding_entry(request, text, params) for text in request.input]}


# -- reply parsing ------------------------------------------------------------

_FINISH: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def finish_reason(value: Any, called_functions: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("finishReason should be a string")
    reason = _FINISH.get(value.upper(), "stop")
    return "tool_calls" if reason == "stop" and called_functions else reason


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """``usageMetadata`` as Usage; thought tokens count as completion tokens."""
    if data is None:
        return None
    prompt = opt_int(data, "promptTokenCount") or 0
    thoughts = opt_int(data, "thoughtsTokenCount")
    completion = (opt_int(data, "candidatesTokenCount") or 0) + (thoughts or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=opt_int(data, "totalTokenCount") or prompt + completion,
        reasoning_tokens=thoughts,
        cached_tokens=opt_int(data, "cachedContentTokenCount"),
    )


def _raise_if_blocked(request: Request, data: dict[str, Any]) -> None:
    feedback = opt_dict(data, "promptFeedback")
    reason = opt_str(feedback, "blockReason") if feedback is not None else None
    if reason and not opt_list(data, "candidates"):
        raise errors.ContentPolicyViolationError(
            f"Gemini blocked the prompt ({reason})",
            provider=request.provider,
            model=request.model,
            code=reason,
        )


@attrs.define
class _Candidate:
    index: int
    text: str | None
    reasoning: str | None
    calls: list[ToolCall]
    finish: Any


def _candidate_index(raw: dict[str, Any], position: int) -> int:
    index = opt_int(raw, "index")
    return position if index is None else index


def _read_candidate(raw: Any, position: int, response_id: str, first_call: int) -> _Candidate:
    raw = as_dict(raw, "candidate")
    index = _candidate_index(raw, position)
    content = opt_dict(raw, "content") or {}
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in opt_list(content, "parts"):
        part = as_dict(part, "part")
        call = opt_dict(part, "functionCall")
        if call is not None:
            name = opt_str(call, "name") or ""
            args = as_dict(call.get("args") or {}, "args")
            position_ = first_call + len(calls)
            call_id = tool_call_id(
                response_id, index, position_, name, args, opt_str(part, "thoughtSignature")
            )
            calls.append(
                ToolCall(id=call_id, function=Function(name=name, arguments=json.dumps(args)))
            )
            continue
        piece = opt_str(part, "text")
        if piece is not None:
            (thoughts if part.get("thought") is True else text).append(piece)
    return _Candidate(
        index=index,
        text="".join(text) if text else None,
        reasoning="".join(thoughts) if thoughts else None,
        calls=calls,
        finish=raw.get("finishReason"),
    )


def chat_response(request: Request, data: Any) -> ChatResponse:
    data = as_dict(data, "response")
    _raise_if_blocked(request, data)
    response_id = opt_str(data, "responseId") or ""
    choices = []
    for position, raw in enumerate(opt_list(data, "candidates")):
        candidate = _read_candidate(raw, position, response_id, 0)
        choices.append(
            Choice(
                index=candidate.index,
                message=Message(
                    content=candidate.text,
                    reasoning_content=candidate.reasoning,
                    tool_calls=candidate.calls or None,
                ),
                finish_reason=finish_reason(candidate.finish, bool(candidate.calls)) or "stop",
            )
        )
    return ChatResponse(
        id=response_id,
        model=opt_str(data, "modelVersion") or request.model,
        choices=choices,
        usage=usage_from(opt_dict(data, "usageMetadata")),
    )


def embedding_response(request: Request, data: Any) -> EmbeddingResponse:
    data = as_dict(data, "embedding response")
    if isinstance(request.input, str):
        vectors = [as_dict(data["embedding"], "embedding")]
    else:
        vectors = [as_dict(item, "embedding") for item in as_list(data["embeddings"])]
    usage = opt_dict(data, "usageMetadata")
    prompt = opt_int(usage, "promptTokenCount") if usage is not None else None
    return EmbeddingResponse(
        model=request.model,
        data=[
            Embedding(index=i, embedding=floats(item["values"])) for i, item in enumerate(vectors)
        ],
        usage=Usage(prompt_tokens=prompt, total_tokens=prompt) if prompt is not None else None,
    )


# -- errors -------------------------------------------------------------------

# google.rpc status names -> the class they call for (when the HTTP status alone says less).
_STATUS_CLASSES: dict[str, type[errors.DispatchError]] = {
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDeniedError,
    "NOT_FOUND": errors.NotFoundError,
    "RESOURCE_EXHAUSTED": errors.RateLimitError,
    "INTERNAL": errors.InternalServerError,
    "UNAVAILABLE": errors.ServiceUnavailableError,
    "INVALID_ARGUMENT": errors.BadRequestError,
    "FAILED_PRECONDITION": errors.BadRequestError,
}
# google.rpc.ErrorInfo reasons that say more than the status.
_REASON_CLASSES: dict[str, type[errors.DispatchError]] = {
    "API_KEY_INVALID": errors.AuthenticationError,
}
_CONTEXT_WINDOW = "exceeds the maximum number of tokens"


def _error_body(content: bytes) -> Any:
    """The error JSON, also when it comes as SSE ``data:`` or wrapped in an array."""
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = None
        try:
            events = SSEParser()
            for event in [*events.feed(content), *events.close()]:
                body = json.loads(event.data)
                break
        except ValueError:
            body = None
    if isinstance(body, list) and body:
        body = body[0]
    return body


@attrs.frozen
class _ErrorFacts:
    message: str
    status: str | None
    reason: str | None
    retry_after: float | None
    daily_quota: bool


def _duration(value: Any) -> float | None:
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _error_facts(body: Any, fallback: str) -> _ErrorFacts:
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return _ErrorFacts(fallback, None, None, None, False)
    reason = None
    retry_after = None
    daily = False
    details = inner.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("reason"), str):
            reason = reason or detail["reason"]
        retry_after = (
            retry_after if retry_after is not None else _duration(detail.get("retryDelay"))
        )
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            quota = violation.get("quotaId") if isinstance(violation, dict) else None
            daily = daily or (isinstance(quota, str) and "PerDay" in quota)
    status = inner.get("status")
    message = inner.get("message")
    return _ErrorFacts(
        message=message if isinstance(message, str) and message else fallback,
        status=status if isinstance(status, str) else None,
        reason=reason,
        retry_after=retry_after,
        daily_quota=daily,
    )


def _error_class(facts: _ErrorFacts) -> type[errors.DispatchError] | None:
    if facts.reason in _REASON_CLASSES:
        return _REASON_CLASSES[facts.reason]
    if _CONTEXT_WINDOW in facts.message:
        return errors.ContextWindowExceededError
    return None


def error_from(request: Request, response: httpx.Response) -> errors.DispatchError:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` as a unified error."""
    body = _error_body(response.content)
    facts = _error_facts(body, response.text[:500])
    error = status_error(
        request,
        response,
        facts.message,
        cls=_error_class(facts),
        code=facts.reason or facts.status,
    )
    if error.retry_after is None:
        error.retry_after = facts.retry_after
    if facts.daily_quota:
        error.retryable = False  # a per-day quota does not come back within a retry
    return error


def _stream_error(request: Request, data: dict[str, Any]) -> errors.DispatchError:
    facts = _error_facts(data, "Gemini sent an error in the stream")
    cls = (
        _error_class(facts) or _STATUS_CLASSES.get(facts.status or "") or errors.InternalServerError
    )
    return cls(
        facts.message,
        provider=request.provider,
        model=request.model,
        retry_after=facts.retry_after,
        code=facts.reason or facts.status,
        secrets=request.secrets(),
    )


# -- streams ------------------------------------------------------------------


# How a body's first byte tells its framing: a JSON array (or bare objects), or SSE
# (a "data:", "event:", "id:" or "retry:" field, or a ":" comment).
_JSON_FIRST = b"[{"
_SSE_FIRST = b"dei:r"


class GeminiStreamDecoder:
    """``alt=sse`` events (or a streamed JSON array) of whole responses, into chunks."""

    __slots__ = ("_calls", "_frames", "_id", "_model", "_request", "_started", "_usage")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._frames: SSEParser | JSONArraySplitter | None = None
        self._calls: dict[int, int] = {}  # candidate index -> function calls seen
        self._started: set[int] = set()
        self._usage: Usage | None = None
        self._id = ""
        self._model = ""

    def feed(self, data: bytes) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            if self._frames is None:
                start = data.lstrip()
                if not start:
                    return []
                first = start[:1]
                if first in _JSON_FIRST:
                    self._frames = JSONArraySplitter()
                elif first in _SSE_FIRST:
                    self._frames = SSEParser()
                else:
                    raise ValueError(f"the body is neither SSE nor a JSON array ({first!r}...)")
            return self._chunks(self._texts(self._frames.feed(data)))

    def close(self) -> list[ChatChunk]:
        with parsing(self._request, "stream event"):
            if self._frames is None:
                return []
            chunks = self._chunks(self._texts(self._frames.close()))
        if self._usage is not None:
            chunks.append(
                ChatChunk(
                    id=self._id,
                    model=self._model or self._request.model,
                    provider=self._request.provider,
                    usage=self._usage,
                )
            )
        return chunks

    @staticmethod
    def _texts(frames: Iterable[Any]) -> list[str]:
        return [frame if isinstance(frame, str) else frame.data for frame in frames]

    def _chunks(self, texts: Sequence[str]) -> list[ChatChunk]:
        out = []
        for text in texts:
            chunk = self._chunk(as_dict(json.loads(text), "stream event"))
            if chunk is not None:
                out.append(chunk)
        return out

    def _chunk(self, data: dict[str, Any]) -> ChatChunk | None:
        request = self._request
        if "error" in data:
            raise _stream_error(request, data)
        _raise_if_blocked(request, data)
        self._id = self._id or opt_str(data, "responseId") or ""
        self._model = self._model or opt_str(data, "modelVersion") or ""
        usage = usage_from(opt_dict(data, "usageMetadata"))
        if usage is not None:
            self._usage = usage
        choices = []
        for position, raw in enumerate(opt_list(data, "candidates")):
            first_call = self._calls.get(_candidate_index(as_dict(raw, "candidate"), position), 0)
            candidate = _read_candidate(raw, position, self._id, first_call)
            index = candidate.index
            self._calls[index] = first_call + len(candidate.calls)
            role = None if index in self._started else "assistant"
            self._started.add(index)
            deltas = [
                ToolCallDelta(
                    index=first_call + k,
                    id=call.id,
                    type="function",
                    function=FunctionDelta(
                        name=call.function.name, arguments=call.function.arguments
                    ),
                )
                for k, call in enumerate(candidate.calls)
            ]
            choices.append(
                ChunkChoice(
                    index=index,
                    delta=Delta(
                        role=role,
                        content=candidate.text,
                        reasoning_content=candidate.reasoning,
                        tool_calls=deltas or None,
                    ),
                    finish_reason=finish_reason(candidate.finish, self._calls[index] > 0),
                )
            )
        if not choices:
            return None
        return ChatChunk(
            id=self._id,
            model=self._model or request.model,
            provider=request.provider,
            choices=choices,
        )


# -- the adapter --------------------------------------------------------------

# Endpoint -> the model method (and query) a request calls.
_METHODS: dict[str, Callable[[Request], str]] = {
    "chat": lambda r: "streamGenerateContent?alt=sse" if r.stream else "generateContent",
    "embedding": lambda r: "embedContent" if isinstance(r.input, str) else "batchEmbedContents",
}

_BODIES: dict[str, Callable[[Request, dict[str, Any]], dict[str, Any]]] = {
    "chat": _chat_body,
    "embedding": _embedding_body,
}

_PARSERS: dict[str, Callable[[Request, Any], AnyResponse]] = {
    "chat": chat_response,
    "embedding": embedding_response,
}


@attrs.frozen(kw_only=True)
class Gemini:
    """The Gemini API adapter. ``GEMINI`` below is the registered instance;
    build another (``Gemini(name="gemini-eu", base_url=...)``) for a proxy or
    a second account."""

    name: str = "gemini"
    base_url: str = BASE_URL
    api_version: str = "v1beta"
    key_envs: tuple[str, ...] = KEY_ENVS
    api_key: Secret | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = _EMPTY
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    timeout: float | None = None
    priority: int = 10
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = (
        "gemini-",
        "gemma-3",
        "learnlm-",
        "text-embedding-004",
        "embedding-001",
    )
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    def key(self, request: Request) -> str:
        """Per call, else configured, else the first set environment variable."""
        found = api_key(request, self.api_key, self.key_envs, provider=self.name)
        assert found is not None  # required: api_key raised otherwise
        return found

    def url(self, request: Request) -> str:
        base = (request.api_base or self.base_url).rstrip("/")
        version = request.api_version or self.api_version
        return f"{base}/{version}/{_model_path(request)}:{_METHODS[request.endpoint](request)}"

    def build(self, request: Request) -> httpx.Request:
        params = dict(request.params)
        extra_headers = params.pop("extra_headers", None) or {}
        extra_body = params.pop("extra_body", None) or {}
        if not isinstance(extra_body, Mapping):
            raise _invalid(request, "extra_body must be a dict")
        key = self.key(request)
        body = _BODIES[request.endpoint](request, params)
        body.update(extra_body)
        return httpx.Request(
            "POST",
            self.url(request),
            headers={**self.headers, "x-goog-api-key": key, **extra_headers},
            json=body,
            extensions=timeout_extensions(self.timeout),
        )

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, read_json(request, response))

    def stream_decoder(self, request: Request) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


GEMINI = Gemini()
