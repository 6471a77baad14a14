"""The ``generateContent`` and ``embedContent`` bodies for an OpenAI-shaped request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.adapter import (
    Request,
)
from providers.gemini.messages import Conversation, invalid


def _tools(request: Request, tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for k, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(request, f"tools[{k}] must be a function tool with a name")
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
        raise invalid(
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
    raise invalid(
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

# Parameters read by the chat body builder itself, never passed through.
_CHAT_OWN = frozenset({*_GENERATION, "tools", "tool_choice", "generationConfig"})

# OpenAI's image_url.detail -> Gemini's media resolution ("auto": Gemini's default).
_DETAIL = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}
_DETAILS = ("auto", "low", "high")


def media_resolution(request: Request) -> str | None:
    """``generationConfig.mediaResolution`` for the images' ``detail``.

    Gemini sets the resolution for the whole request (per part only on its
    newest models), so when images ask for different details the highest
    wins: no image is read at less than the detail asked for it."""
    asked: set[str] = set()
    for i, message in enumerate(request.messages):
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            image = part.get("image_url") if isinstance(part, Mapping) else None
            detail = image.get("detail") if isinstance(image, Mapping) else None
            if detail is None:
                continue
            if detail not in _DETAILS:
                raise invalid(request, f"messages[{i}]: image_url.detail must be auto, low or high")
            asked.add(detail)
    best = next((d for d in ("high", "low") if d in asked), None)
    return _DETAIL.get(best) if best is not None else None


def chat_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    conversation = Conversation(request)
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
    resolution = media_resolution(request)
    if resolution is not None:
        config.setdefault("mediaResolution", resolution)  # a caller's own setting wins
    if config or generation is not None:
        body["generationConfig"] = config
    body.update({k: v for k, v in params.items() if k not in _CHAT_OWN and v is not None})
    return body


def model_path(request: Request) -> str:
    return request.model if "/" in request.model else f"models/{request.model}"


def _embedding_entry(request: Request, text: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """One EmbedContentRequest; Gemini fields (``outputDimensionality``,
    ``taskType``...) pass as given."""
    if not isinstance(text, str):
        raise invalid(request, "embedding input must be text (token ids are not supported)")
    entry: dict[str, Any] = {"model": model_path(request), "content": {"parts": [{"text": text}]}}
    entry.update((name, value) for name, value in params.items() if value is not None)
    return entry


def embedding_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(request.input, str):
        return _embedding_entry(request, request.input, params)
    return {"requests": [_embedding_entry(request, text, params) for text in request.input]}
