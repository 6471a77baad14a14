"""OpenAI itself: every endpoint, on the shared OpenAI-format adapter."""

from __future__ import annotations

from providers.openai_compatible import ALL_ENDPOINTS, OpenAICompatible

OPENAI = OpenAICompatible(
    name="openai",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    endpoints=ALL_ENDPOINTS,
    priority=10,
    prefixes=(
        "gpt-",
        "chatgpt-",
        "o1",
        "o3",
        "o4",
        "text-embedding-",
        "dall-e-",
        "gpt-image-",
        "whisper-",
        "tts-",
        "davinci-",
        "babbage-",
        "omni-moderation",
    ),
)
