"""OpenAI-shaped requests as ``/api/chat`` and ``/api/embed`` bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.adapter import (
    Request,
    errors,
)

_ROLES: dict[str, str] = {"developer": "system", "function": "tool"}


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
_TOP_LEVEL: dict[str, frozenset[str]] = {
    "chat": frozenset({"tools", "think", "keep_alive", "format"}),
    "embedding": frozenset({"truncate", "keep_alive", "dimensions"}),
}


def _place_params(request: Request, params: Mapping[str, Any], body: dict[str, Any]) -> None:
    """Each parameter to the top level or into ``options``, mapped as above (the
    adapter's parameter policy has already refused or dropped what Ollama lacks)."""
    top_level = _TOP_LEVEL[request.endpoint]
    options: dict[str, Any] = {}
    for key, given in params.items():
        if given is None:
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


def chat_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": ollama_messages(request),
        "stream": request.stream,
    }
    _place_params(request, params, body)
    return body


def embed_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    given = request.input
    if not isinstance(given, str) and not (
        isinstance(given, list | tuple) and given and all(isinstance(t, str) for t in given)
    ):
        raise _invalid(request, "ollama embeds text: input must be a string or a list of strings")
    body: dict[str, Any] = {"model": request.model, "input": request.input}
    _place_params(request, params, body)
    return body
