"""Gemini's function calls have no id: a stable one is made here, carrying the
call's ``thoughtSignature`` so it goes back to Gemini on the next turn.

The id is ``call_<24 hex>__ts_<signature as unpadded URL-safe base64>``; when
the assistant message is sent again the signature is read back out of it
(padded, URL-safe, as Google's own SDK sends it). A tool call carrying
``extra_content.google.thought_signature`` (the shape of Google's
OpenAI-compatible endpoint) is honoured too, and wins.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

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


def signature_in(call: Mapping[str, Any]) -> str | None:
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
