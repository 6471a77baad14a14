"""OpenAI itself: every endpoint, on the shared OpenAI-format adapter.

- Key: ``api_key=`` per call, else ``OPENAI_API_KEY``.
- Base URL: ``api_base=`` per call, else ``OPENAI_BASE_URL`` (the variable the
  official SDK reads, for proxies and gateways), else ``https://api.openai.com/v1``.
- Streams ask for usage (``stream_options.include_usage``): the last chunk
  carries it.
- Embeddings come back as floats; ``encoding_format="base64"`` asks for the
  smaller base64 body, decoded to floats all the same.
- Transcription takes audio bytes or ``(filename, bytes[, content_type])``;
  speech returns the audio bytes with their content type.
- ``developer`` messages are sent as they are (elsewhere they become ``system``).
- It owns the bare names of its model families (``gpt-``, ``o1``/``o3``/``o4``,
  ``text-embedding-``, ``dall-e-``, ``whisper-``, ``tts-``...), above any
  reseller that might claim them.
"""

from __future__ import annotations

from providers.openai_compatible import ALL_ENDPOINTS, OpenAICompatible

OPENAI = OpenAICompatible(
    name="openai",
    base_url="https://api.openai.com/v1",
    base_url_envs=("OPENAI_BASE_URL",),
    key_envs=("OPENAI_API_KEY",),
    endpoints=ALL_ENDPOINTS,
    roles={},  # OpenAI has the developer role
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
