"""OpenAI-shaped chat requests as ``/v1/messages`` bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.adapter import Request, errors
from providers.anthropic.structured import add_response_format

_Block = dict[str, Any]

_TOOL_CHOICES: dict[str, str] = {
    "auto": "auto",
    "required": "any",
    "any": "any",
    "none": "none",
}
_NATIVE_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})


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


def _blank(text: Any) -> bool:
    return isinstance(text, str) and not text.strip()


def _blocks(request: Request, content: Any) -> list[_Block]:
    """Content (a string, or a list of OpenAI or Anthropic parts) as Anthropic blocks.

    Anthropic rejects empty text blocks ("text content blocks must be
    non-empty"): text that is empty or only whitespace is left out."""
    if content is None or _blank(content):
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, Sequence):
        raise _invalid(request, "message content must be a string or a list of parts")
    blocks: list[_Block] = []
    for part in content:
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise _invalid(request, "each content part must be a dict with a 'type'")
        if part["type"] == "text" and _blank(part.get("text")):
            continue
        blocks.append(_image(request, part) if part["type"] == "image_url" else dict(part))
    return blocks


def _mark_cache(message: Mapping[str, Any], blocks: list[_Block]) -> list[_Block]:
    if "cache_control" in message and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": message["cache_control"]}
    return blocks


def _content(request: Request, message: Mapping[str, Any]) -> str | list[_Block]:
    content = message.get("content")
    if isinstance(content, str) and not _blank(content) and "cache_control" not in message:
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

    __slots__ = ("_index", "_request", "_tool_results", "messages", "system")

    def __init__(self, request: Request) -> None:
        self._request = request
        self.system: list[_Block] = []
        self.messages: list[_Block] = []
        self._tool_results: list[_Block] | None = None  # the open user turn of tool results
        self._index = 0

    def add(self, index: int, message: Mapping[str, Any]) -> None:
        role = message.get("role")
        add = _ROLES.get(role) if isinstance(role, str) else None
        if add is None:
            raise _invalid(
                self._request,
                f"anthropic does not take {role!r} messages (roles: {', '.join(sorted(_ROLES))})",
            )
        self._index = index
        add(self, message)

    def _append(self, role: str, content: str | list[_Block]) -> None:
        self.messages.append({"role": role, "content": content})
        self._tool_results = None

    def _system(self, message: Mapping[str, Any]) -> None:
        self.system.extend(_mark_cache(message, _blocks(self._request, message.get("content"))))

    def _user(self, message: Mapping[str, Any]) -> None:
        content = _content(self._request, message)
        if not content:  # sending a placeholder would invent input
            raise _invalid(
                self._request,
                f"messages[{self._index}] (user) has no content: anthropic rejects empty text",
            )
        self._append("user", content)

    def _assistant(self, message: Mapping[str, Any]) -> None:
        calls = message.get("tool_calls") or ()
        if message.get("function_call") is not None:
            raise _invalid(self._request, "function_call is not supported: use tool_calls")
        if not calls:
            content = _content(self._request, message)
            if content:  # an empty assistant turn said nothing: it is left out
                self._append("assistant", content)
            return
        blocks = _blocks(self._request, message.get("content"))
        blocks.extend(_tool_use(self._request, call) for call in calls)
        self._append("assistant", _mark_cache(message, blocks))

    def _tool(self, message: Mapping[str, Any]) -> None:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise _invalid(self._request, "a tool message needs the tool_call_id it answers")
        content = message.get("content")
        result: _Block = {"type": "tool_result", "tool_use_id": call_id}
        if content is not None and not _blank(content):  # an empty result has no content
            blocks = content if isinstance(content, str) else _blocks(self._request, content)
            if blocks:
                result["content"] = blocks
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
    for index, message in enumerate(request.messages):
        conversation.add(index, message)
    if not conversation.messages:
        raise _invalid(request, "anthropic needs at least one user or assistant message")
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
    add_response_format(request, params, body)
    user = params.pop("safety_identifier", None) or params.pop("user", None)
    params.pop("user", None)
    if user is not None:
        body["metadata"] = {"user_id": user}
    body.update(params)  # Anthropic's own parameters (thinking, top_k, output_config...)
    if request.stream:
        body["stream"] = True
    return body
