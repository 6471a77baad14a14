"""Keeping API keys out of reprs, logs, messages and cache keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

# Things that look like keys even when we were not told the exact value:
# OpenAI-style "sk-...", Anthropic "sk-ant-...", Google "AIza...", bearer tokens.
_KEY_LIKE = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


class Secret:
    """A string that never shows itself: ``repr``, ``str`` and f-strings give ``'***'``.

    ``reveal()`` returns the value, for the one place that must send it.
    """

    __slots__ = ("_fingerprint", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._fingerprint: str | None = None

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short one-way digest: tells two keys apart without exposing either."""
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(self._value.encode()).hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def scrub(text: str, secrets: Sequence[str | None] = ()) -> str:
    """Remove the given secrets, and anything shaped like a key, from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)
