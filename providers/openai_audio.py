"""The multipart and audio side of OpenAI's wire format: transcription uploads
and speech replies.

``file`` is audio bytes, ``(filename, bytes)`` or ``(filename, bytes,
content_type)``. Bare bytes get a filename whose extension is sniffed from the
audio's magic bytes (OpenAI picks the decoder by extension); list parameters
are sent as repeated ``name[]`` fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from pipeline.adapter import (
    Request,
    SpeechResponse,
    TranscriptionResponse,
    as_dict,
    opt_str,
    read_json,
    req_str,
)


def transcription_upload(
    request: Request, fields: dict[str, str | list[str]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The multipart upload: the audio file plus form fields."""
    for name, value in params.items():
        if value is None or name == "extra_body":
            continue
        if isinstance(value, (list, tuple)):
            fields[f"{name}[]"] = [_form_value(item) for item in value]
        else:
            fields[name] = _form_value(value)
    return {"files": {"file": audio_upload(request.input)}, "data": fields}


def transcription_response(request: Request, response: httpx.Response) -> TranscriptionResponse:
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


def speech_response(request: Request, response: httpx.Response) -> SpeechResponse:
    return SpeechResponse(
        model=request.model,
        content=response.content,
        content_type=response.headers.get("content-type", "application/octet-stream"),
    )


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
