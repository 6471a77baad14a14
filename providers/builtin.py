"""Every provider that ships with dispatchline: one line per native adapter."""

from __future__ import annotations

from pipeline.adapter import Adapter
from providers.mock import mock_provider
from providers.openai import OPENAI

BUILTIN: tuple[Adapter, ...] = (
    mock_provider(),
    OPENAI,
)
