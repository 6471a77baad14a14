"""The immutable request that flows through the middleware chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import attrs

from pipeline._secrets import Secret

Endpoint = Literal["chat", "embedding", "image", "transcription", "speech"]
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "embedding", "image", "transcription", "speech")

_EMPTY: Mapping[str, Any] = MappingProxyType({})

# Params that can carry credentials (headers, tokens): shown masked in a repr.
_SENSITIVE_PARAMS = frozenset({"extra_headers", "azure_ad_token", "api_key", "token"})


def _params_repr(params: Mapping[str, Any]) -> str:
    shown = {k: "***" if k in _SENSITIVE_PARAMS else v for k, v in params.items()}
    return repr(shown)


@attrs.frozen(kw_only=True)
class Request:
    """One call to one provider, after resolution and validation.

    A middleware that changes a request passes ``attrs.evolve(request, ...)``
    on; nothing mutates a request in place.

    - ``messages``: the chat messages (OpenAI's shape), for ``chat``.
    - ``input``: the embedding input, image prompt, speech text, or the audio
      file for transcription (``bytes`` or ``(filename, bytes)``).
    - ``params``: every parameter that shapes the output, by OpenAI's names
      (``temperature``, ``max_tokens``, ``tools``...), plus provider-specific
      ones, which adapters pass through unchanged.
    - ``options``: controls for middlewares (``cache``, ``metadata``); never
      sent to a provider.
    - ``api_key``/``api_base``/``api_version``: per-call credentials; the key
      is a :class:`Secret` and never shows in a repr.
    """

    endpoint: Endpoint
    provider: str
    model: str
    messages: Sequence[Mapping[str, Any]] = ()
    input: Any = None
    params: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=_params_repr)
    stream: bool = False
    api_key: Secret | None = attrs.field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    timeout: float | None = None
    options: Mapping[str, Any] = _EMPTY

    @property
    def target(self) -> str:
        """``"provider/model"``."""
        return f"{self.provider}/{self.model}"

    def secrets(self) -> tuple[str, ...]:
        """The raw secrets this request carries, for scrubbing error messages."""
        return (self.api_key.reveal(),) if self.api_key is not None else ()
