"""What a cache entry is filed under, and which requests are cached without being asked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline import Request

__all__ = ["KEY_VERSION", "cache_key", "key_namespace", "samples"]

KEY_VERSION = 1  # bump when the key's contents change, so old entries stop matching


def _canonical(value: Any) -> Any:
    """The JSON form of what ``json`` cannot encode by itself, or TypeError."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


_encode = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    check_circular=False,  # a cycle ends in RecursionError: not cached, as before
    default=_canonical,
).encode


def cache_key(request: Request) -> str | None:
    """The sha256 hex digest of everything in ``request`` that shapes the output.

    ``None`` when a value has no canonical JSON form: such a request is not cached.
    The API key is never part of it (see :func:`key_namespace`).
    """
    try:
        text = _encode(
            [
                KEY_VERSION,
                request.endpoint,
                request.provider,
                request.model,
                request.messages,
                request.input,
                request.params,
                request.stream,
                request.api_base,
                request.api_version,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()
    except (TypeError, ValueError, RecursionError):
        return None


def key_namespace(request: Request) -> str:
    """The default namespace: the API key's one-way fingerprint, or ``"env"``."""
    if request.api_key is None:
        return "env"
    return "key-" + request.api_key.fingerprint()


# -- which answers are samples -------------------------------------------------------


def _zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _chat(request: Request) -> bool:
    # Providers sample at temperature 1 (or near it) unless told otherwise.
    return not _zero(request.params.get("temperature"))


def _transcription(request: Request) -> bool:
    # Speech-to-text decodes greedily (temperature 0) unless told otherwise.
    temperature = request.params.get("temperature")
    return temperature is not None and not _zero(temperature)


def _always(request: Request) -> bool:
    return True


def _never(request: Request) -> bool:
    return False


_SAMPLES: dict[str, Callable[[Request], bool]] = {
    "chat": _chat,
    "image": _always,
    "transcription": _transcription,
    "embedding": _never,
    "speech": _never,
}


def samples(request: Request) -> bool:
    """Whether ``request`` asks for a sampled answer, one that may differ each time
    it is asked: a chat completion without ``temperature=0``, an image, a
    transcription at a temperature above 0. Embeddings and speech do not sample."""
    return _SAMPLES.get(request.endpoint, _always)(request)
