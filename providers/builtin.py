"""Every provider that ships with dispatchline: one line per native adapter."""

from __future__ import annotations

from pipeline.adapter import Adapter
from providers.anthropic import ANTHROPIC
from providers.azure import AZURE
from providers.cohere import COHERE
from providers.compatible import COMPATIBLE
from providers.gemini import GEMINI
from providers.mock import mock_provider
from providers.ollama import OLLAMA
from providers.openai import OPENAI

BUILTIN: tuple[Adapter, ...] = (
    mock_provider(),
    OPENAI,
    AZURE,
    ANTHROPIC,
    OLLAMA,
    COHERE,
    GEMINI,
    *COMPATIBLE,
)
