"""OpenAI-shaped messages as Gemini ``contents`` and ``systemInstruction``."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.adapter import (
    Request,
    errors,
)
from providers.gemini.ids import signature_in


def invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        f"{request.provider}: {message}", provider=request.provider, model=request.model
    )


def _data_url(request: Request, url: str, where: str) -> dict[str, Any]:
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise invalid(request, f"{where}: a data: URL must be base64 (data:<type>;base64,...)")
    return {"inlineData": {"mimeType": head[len("data:") : -len(";base64")], "data": data}}


def _media_url(request: Request, url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise invalid(request, f"{where}: needs a URL")
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
        raise invalid(request, f"{where}: input_audio needs base64 data and a format")
    return {
        "inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio["data"]}
    }


def _file_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise invalid(request, f"{where}: a file part needs file_data as a data: URL")
    return _data_url(request, data, where)


def _text_part(request: Request, part: Mapping[str, Any], where: str) -> dict[str, Any]:
    text = part.get("text")
    if not isinstance(text, str):
        raise invalid(request, f"{where}: a text part needs text")
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
            raise invalid(
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
        raise invalid(request, f"{where}: a tool call needs function.name")
    raw = function.get("arguments") if isinstance(function, Mapping) else None
    try:
        args = json.loads(raw) if isinstance(raw, str) and raw.strip() else (raw or {})
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise invalid(request, f"{where}: function.arguments must be a JSON object")
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    signature = signature_in(call)
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


class Conversation:
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
            raise invalid(self.request, f"messages[{index}]: unsupported role {role!r}")
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
            raise invalid(
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


_ROLE_CONVERTERS: dict[str, Callable[[Conversation, str, Mapping[str, Any], bool], None]] = {
    "system": Conversation._system,
    "developer": Conversation._system,
    "user": Conversation._user,
    "assistant": Conversation._assistant,
    "tool": Conversation._tool,
    "function": Conversation._tool,
}
