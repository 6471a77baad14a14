"""The OpenAI-compatible providers: one row each, one shared adapter.

Every row is an :class:`~providers.openai_compatible.OpenAICompatible`: name,
base URL, the environment variable holding the key, extra headers, the
endpoints it offers, default timeout, auto-detect priority and model-name
prefixes. Base URLs and key variables are the ones each provider documents.

How to add a provider: append one row to :data:`COMPATIBLE`::

    OpenAICompatible(
        name="acme",                           # what users write: "acme/<model>"
        base_url="https://api.acme.ai/v1",     # up to the version segment
        key_envs=("ACME_API_KEY",),                # None for a server that needs no key
        endpoints=CHAT_EMBEDDING,              # what it serves
        prefixes=("acme-",),                   # only names no one else uses
    ),

Nothing else changes: the registry, auto-detection and the capability table
(``python -m providers``) pick it up. Quirks are configuration, never a branch
on the name: ``stream_usage=False`` for a server that rejects
``stream_options`` (it sends usage anyway), ``headers`` for required extra
headers, ``{ENV_NAME}`` in ``base_url`` for a URL that embeds an account id,
``base_url_envs`` for a variable that relocates the server.

Local servers (LM Studio, vLLM, llama.cpp, llamafile, Ollama's ``/v1``,
SGLang, Docker Model Runner, Jan) need no key and default to their documented localhost address;
``api_base=`` points a call elsewhere, and ``api_key=`` adds a key for a
server started with one.

Auto-detection claims only prefixes that name one provider's own models
(``deepseek-``, ``grok-``, ``mistral-``, ``sonar``...); those rows take
priority :data:`OWNER` so a reseller row cannot take them, while OpenAI,
Anthropic and Gemini keep their families at a higher priority still.
"""

from __future__ import annotations

from pipeline.adapter import ADVISORY_PARAMS, Endpoint, ParamPolicy
from providers.openai_compatible import (
    ALL_ENDPOINTS,
    CHAT,
    CHAT_EMBEDDING,
    SPEAKS_OPENAI,
    OpenAICompatible,
)

OWNER = 5  # auto-detect priority of a provider's own model family

EMBEDDING: frozenset[Endpoint] = frozenset({"embedding"})
CHAT_IMAGE: frozenset[Endpoint] = frozenset({"chat", "image"})
CHAT_TRANSCRIPTION: frozenset[Endpoint] = frozenset({"chat", "transcription"})
CHAT_EMBEDDING_IMAGE: frozenset[Endpoint] = frozenset({"chat", "embedding", "image"})
CHAT_EMBEDDING_TRANSCRIPTION: frozenset[Endpoint] = frozenset(
    {"chat", "embedding", "transcription"}
)

GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

# Mistral's chat completions (its API reference / client-python's
# ChatCompletionRequest): the seed is random_seed, there is no
# max_completion_tokens, no user, no stream_options, no logprobs.
MISTRAL_CHAT = ParamPolicy(
    others="send",
    rename={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    drop={"stream_options", *ADVISORY_PARAMS - {"prompt_cache_key"}},
    fixed={"logprobs": False, "modalities": ["text"]},
    refuse={
        "top_logprobs",
        "logit_bias",
        "service_tier",
        "audio",
        "web_search_options",
        "verbosity",
        "functions",
        "function_call",
        "moderation",
    },
)
# Groq's OpenAI compatibility page: these answer 400, and n must be 1.
GROQ_CHAT = ParamPolicy(
    others="send", refuse={"logprobs", "top_logprobs", "logit_bias"}, only={"n": 1}
)
# Cerebras' "OpenAI Compatibility" page (inference-docs.cerebras.ai/resources/openai),
# "Currently Unsupported OpenAI Features": these answer 400.
CEREBRAS_CHAT = ParamPolicy(
    others="send", refuse={"frequency_penalty", "presence_penalty", "logit_bias"}
)

COMPATIBLE: tuple[OpenAICompatible, ...] = (
    # -- hosted inference --------------------------------------------------
    OpenAICompatible(
        name="groq",
        base_url="https://api.groq.com/openai/v1",
        key_envs=("GROQ_API_KEY",),
        endpoints=CHAT_TRANSCRIPTION,
        params={**SPEAKS_OPENAI, "chat": GROQ_CHAT},
        stream_usage=False,  # usage arrives in x_groq and on the last chunk anyway
    ),
    OpenAICompatible(
        name="mistral",
        base_url="https://api.mistral.ai/v1",
        key_envs=("MISTRAL_API_KEY",),
        endpoints=CHAT_EMBEDDING,
        params={**SPEAKS_OPENAI, "chat": MISTRAL_CHAT},
        stream_usage=False,  # usage arrives on the last chunk without asking
        priority=OWNER,
        prefixes=(
            "mistral-",
            "codestral-",
            "magistral-",
            "ministral-",
            "pixtral-",
            "devstral-",
            "open-mistral-",
            "open-mixtral-",
        ),
    ),
    OpenAICompatible(
        name="together",
        base_url="https://api.together.ai/v1",
        key_envs=("TOGETHER_API_KEY",),
        endpoints=ALL_ENDPOINTS,
    ),
    OpenAICompatible(
        name="fireworks",
        base_url="https://api.fireworks.ai/inference/v1",
        key_envs=("FIREWORKS_API_KEY",),
        endpoints=CHAT_EMBEDDING,
        priority=OWNER,
        prefixes=("accounts/fireworks/",),
    ),
    OpenAICompatible(
        name="deepseek",
        base_url="https://api.deepseek.com",
        key_envs=("DEEPSEEK_API_KEY",),
        priority=OWNER,
        prefixes=("deepseek-",),
    ),
    OpenAICompatible(
        name="openrouter",
        base_url="https://openrouter.ai/api/v1",
        key_envs=("OPENROUTER_API_KEY",),
    ),
    OpenAICompatible(
        name="perplexity",
        base_url="https://api.perplexity.ai",
        key_envs=("PERPLEXITY_API_KEY",),
        priority=OWNER,
        prefixes=("sonar",),
    ),
    OpenAICompatible(
        name="xai",
        base_url="https://api.x.ai/v1",
        key_envs=("XAI_API_KEY",),
        endpoints=CHAT_IMAGE,
        priority=OWNER,
        prefixes=("grok-",),
    ),
    OpenAICompatible(
        name="cerebras",
        base_url="https://api.cerebras.ai/v1",
        key_envs=("CEREBRAS_API_KEY",),
        params={**SPEAKS_OPENAI, "chat": CEREBRAS_CHAT},
    ),
    OpenAICompatible(
        name="deepinfra",
        base_url="https://api.deepinfra.com/v1/openai",
        key_envs=("DEEPINFRA_API_KEY",),
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="sambanova",
        base_url="https://api.sambanova.ai/v1",
        key_envs=("SAMBANOVA_API_KEY",),
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="nvidia_nim",
        base_url="https://integrate.api.nvidia.com/v1",
        key_envs=("NVIDIA_API_KEY",),
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="hyperbolic",
        base_url="https://api.hyperbolic.xyz/v1",
        key_envs=("HYPERBOLIC_API_KEY",),
    ),
    OpenAICompatible(
        name="novita",
        base_url="https://api.novita.ai/openai/v1",
        key_envs=("NOVITA_API_KEY",),
    ),
    OpenAICompatible(
        name="nebius",
        base_url="https://api.tokenfactory.nebius.com/v1",
        key_envs=("NEBIUS_API_KEY",),
        endpoints=CHAT_EMBEDDING_IMAGE,
    ),
    OpenAICompatible(
        name="moonshot",
        base_url="https://api.moonshot.ai/v1",
        key_envs=("MOONSHOT_API_KEY",),
        priority=OWNER,
        prefixes=("moonshot-", "kimi-"),
    ),
    OpenAICompatible(
        name="dashscope",
        base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        key_envs=("DASHSCOPE_API_KEY",),
        endpoints=CHAT_EMBEDDING,
        priority=OWNER,
        prefixes=("qwen-max", "qwen-plus", "qwen-turbo", "qwen-flash", "qwen-long"),
    ),
    OpenAICompatible(
        name="github_models",
        base_url="https://models.github.ai/inference",
        key_envs=("GITHUB_TOKEN",),
        headers=GITHUB_HEADERS,
    ),
    OpenAICompatible(
        name="huggingface",
        base_url="https://router.huggingface.co/v1",
        key_envs=("HF_TOKEN",),
    ),
    OpenAICompatible(
        name="friendli",
        base_url="https://api.friendli.ai/serverless/v1",
        key_envs=("FRIENDLI_TOKEN",),
    ),
    OpenAICompatible(
        name="baseten",
        base_url="https://inference.baseten.co/v1",
        key_envs=("BASETEN_API_KEY",),
    ),
    OpenAICompatible(
        name="featherless",
        base_url="https://api.featherless.ai/v1",
        key_envs=("FEATHERLESS_API_KEY",),
    ),
    OpenAICompatible(
        name="zai",
        base_url="https://api.z.ai/api/paas/v4",
        key_envs=("ZAI_API_KEY",),
    ),
    OpenAICompatible(
        name="zhipu",
        base_url="https://open.bigmodel.cn/api/paas/v4",
        base_url_envs=("ZHIPUAI_BASE_URL",),
        key_envs=("ZHIPUAI_API_KEY",),
    ),
    OpenAICompatible(
        name="minimax",
        base_url="https://api.minimax.io/v1",
        key_envs=("MINIMAX_API_KEY",),
        priority=OWNER,
        prefixes=("minimax-",),
    ),
    OpenAICompatible(
        name="venice",
        base_url="https://api.venice.ai/api/v1",
        key_envs=("VENICE_API_KEY",),
    ),
    OpenAICompatible(
        name="scaleway",
        base_url="https://api.scaleway.ai/v1",
        key_envs=("SCW_SECRET_KEY",),
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="ovhcloud",
        base_url="https://oai.endpoints.kepler.ai.cloud.ovh.net/v1",
        key_envs=("OVH_AI_ENDPOINTS_ACCESS_TOKEN",),
    ),
    OpenAICompatible(
        name="cloudflare",
        base_url="https://api.cloudflare.com/client/v4/accounts/{CLOUDFLARE_ACCOUNT_ID}/ai/v1",
        key_envs=("CLOUDFLARE_API_KEY",),
        endpoints=CHAT_EMBEDDING,
        priority=OWNER,
        prefixes=("@cf/",),
    ),
    OpenAICompatible(
        name="crusoe",
        base_url="https://api.inference.crusoecloud.com/v1",
        key_envs=("CRUSOE_API_KEY",),
    ),
    OpenAICompatible(
        name="wandb",
        base_url="https://api.inference.wandb.ai/v1",
        key_envs=("WANDB_API_KEY",),
    ),
    OpenAICompatible(
        name="ai21",
        base_url="https://api.ai21.com/studio/v1",
        key_envs=("AI21_API_KEY",),
        priority=OWNER,
        prefixes=("jamba-",),
    ),
    OpenAICompatible(
        name="upstage",
        base_url="https://api.upstage.ai/v1",
        key_envs=("UPSTAGE_API_KEY",),
        priority=OWNER,
        prefixes=("solar-",),
    ),
    OpenAICompatible(
        name="chutes",
        base_url="https://llm.chutes.ai/v1",
        key_envs=("CHUTES_API_KEY",),
    ),
    OpenAICompatible(
        name="vercel",
        base_url="https://ai-gateway.vercel.sh/v1",
        key_envs=("AI_GATEWAY_API_KEY",),
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="jina",
        base_url="https://api.jina.ai/v1",
        key_envs=("JINA_API_KEY",),
        endpoints=EMBEDDING,
        priority=OWNER,
        prefixes=("jina-",),
    ),
    # -- local servers: no key, documented default address -----------------
    OpenAICompatible(
        name="lm_studio",
        base_url="http://localhost:1234/v1",
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="vllm",
        base_url="http://localhost:8000/v1",
        endpoints=CHAT_EMBEDDING_TRANSCRIPTION,
    ),
    OpenAICompatible(
        name="llamacpp",
        base_url="http://localhost:8080/v1",
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="llamafile",
        base_url="http://localhost:8080/v1",
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="ollama_openai",  # Ollama's /v1 API; the native /api one is "ollama"
        base_url="http://localhost:11434/v1",
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="sglang",
        base_url="http://localhost:30000/v1",
        endpoints=CHAT_EMBEDDING,
    ),
    OpenAICompatible(
        name="docker_model_runner",  # Docker Desktop's runner, host TCP port enabled
        base_url="http://localhost:12434/engines/v1",
    ),
    OpenAICompatible(
        name="jan",  # Jan's server requires the key you chose in its settings: api_key=
        base_url="http://localhost:1337/v1",
    ),
)

__all__ = ["CEREBRAS_CHAT", "CHAT", "COMPATIBLE", "GROQ_CHAT", "MISTRAL_CHAT", "OWNER"]
