"""Where a provider's key comes from: per call, else configured, else the environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from pipeline import Request, Secret, errors


def first_env(names: Iterable[str]) -> str | None:
    """The value of the first of ``names`` set (non-empty) in the environment."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def api_key(
    request: Request,
    configured: Secret | None,
    env: Sequence[str],
    *,
    required: bool = True,
    provider: str | None = None,
) -> str | None:
    """The key to send: ``api_key=`` on the call, else the adapter's configured
    key, else the first of the ``env`` variables set. With none and
    ``required``, an AuthenticationError naming the variables, before any I/O."""
    if request.api_key is not None:
        return request.api_key.reveal()
    if configured is not None:
        return configured.reveal()
    found = first_env(env)
    if found is None and required:
        where = f"set {' or '.join(env)}, or pass api_key=" if env else "pass api_key="
        raise errors.AuthenticationError(
            f"no API key for {provider or request.provider}: {where}",
            provider=request.provider,
            model=request.model,
        )
    return found
