"""Azure OpenAI (provider name ``azure``): OpenAI's wire format at deployment URLs.

``azure/<deployment>`` calls
``{endpoint}/openai/deployments/{deployment}/{path}?api-version={version}``;
the model name *is* the deployment name. The body leaves ``model`` out (the
URL names it; azure-ai-inference and crewAI send it that way). To send one
anyway, pass ``extra_body={"model": ...}``.

Where each setting comes from, first found wins:

- endpoint: ``api_base=`` per call, ``AzureOpenAI(base_url=...)``,
  ``AZURE_OPENAI_ENDPOINT``, ``AZURE_API_BASE``;
- API version: ``api_version=`` per call, ``AzureOpenAI(api_version=...)``,
  ``OPENAI_API_VERSION``, ``AZURE_API_VERSION``, else :data:`DEFAULT_API_VERSION`
  (the latest GA data-plane inference version);
- credentials: a Microsoft Entra ID token passed per call as
  ``azure_ad_token=`` (sent as ``Authorization: Bearer``), ``api_key=`` per
  call (sent as ``api-key``), ``AzureOpenAI(api_key=...)``,
  ``AzureOpenAI(ad_token_provider=callable)``, ``AZURE_OPENAI_API_KEY``,
  ``AZURE_API_KEY``, ``AZURE_OPENAI_AD_TOKEN``. Nothing found is an
  :class:`~pipeline.errors.AuthenticationError` before any I/O.

  ``azure_ad_token`` travels in the call's params, and params show in a
  request's repr: pass it as a :class:`pipeline.Secret`, or configure an
  ``ad_token_provider``, to keep it out of logs.

Replies carry ``prompt_filter_results`` and per-choice
``content_filter_results``; they are read past. A reply cut by the filter
keeps ``finish_reason="content_filter"``; a prompt the filter rejects (400,
``code: content_filter`` / ``innererror.code: ResponsibleAIPolicyViolation``)
raises :class:`~pipeline.errors.ContentPolicyViolationError`. The first
stream event, with empty ``choices`` and only filter results, yields no chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from urllib.parse import quote

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._secrets import Secret
from providers._credentials import first_env
from providers.openai_compatible import ALL_ENDPOINTS, OpenAICompatible

DEFAULT_API_VERSION = "2024-10-21"

ENDPOINT_ENVS = ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE")
VERSION_ENVS = ("OPENAI_API_VERSION", "AZURE_API_VERSION")
KEY_ENVS = ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"

_PATHS: dict[str, str] = {
    "chat": "chat/completions",
    "embedding": "embeddings",
    "image": "images/generations",
    "transcription": "audio/transcriptions",
    "speech": "audio/speech",
}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _revealed(value: object) -> str | None:
    if isinstance(value, Secret):
        return value.reveal()
    return value if isinstance(value, str) and value else None


@attrs.frozen(kw_only=True)
class AzureOpenAI(OpenAICompatible):
    """Azure OpenAI: deployment URLs, ``api-version``, ``api-key`` or Entra ID token."""

    control_params: ClassVar[frozenset[str]] = frozenset({"extra_headers", "azure_ad_token"})

    name: str = "azure"
    base_url: str = ""
    key_env: str | None = KEY_ENVS[0]
    endpoints: frozenset[Endpoint] = ALL_ENDPOINTS
    api_version: str | None = None
    ad_token_provider: Callable[[], str] | None = attrs.field(default=None, repr=False)

    def base(self, request: Request) -> str:
        found = request.api_base or self.base_url or first_env(ENDPOINT_ENVS)
        if not found:
            raise errors.InvalidRequestError(
                f"no Azure OpenAI endpoint for {request.provider}: set "
                f"{' or '.join(ENDPOINT_ENVS)}, or pass api_base=",
                provider=request.provider,
                model=request.model,
            )
        found = found.rstrip("/")
        return found.removesuffix("/openai")

    def version(self, request: Request) -> str:
        return (
            request.api_version
            or self.api_version
            or first_env(VERSION_ENVS)
            or DEFAULT_API_VERSION
        )

    def url(self, request: Request) -> str:
        deployment = quote(request.model, safe="")
        address = f"{self.base(request)}/openai/deployments/{deployment}/{_PATHS[request.endpoint]}"
        return str(httpx.URL(address, params={"api-version": self.version(request)}))

    def model_field(self, request: Request) -> dict[str, str]:
        return {}

    def auth_headers(self, request: Request) -> dict[str, str]:
        token = _revealed(request.params.get("azure_ad_token"))
        if token:
            return _bearer(token)
        if request.api_key is not None:
            return {"api-key": request.api_key.reveal()}
        if self.api_key is not None:
            return {"api-key": self.api_key.reveal()}
        if self.ad_token_provider is not None:
            return _bearer(self.ad_token_provider())
        key = first_env(KEY_ENVS)
        if key:
            return {"api-key": key}
        token = first_env((TOKEN_ENV,))
        if token:
            return _bearer(token)
        raise errors.AuthenticationError(
            f"no credentials for {request.provider}: set {' or '.join(KEY_ENVS)} "
            f"(or {TOKEN_ENV}), or pass api_key= or azure_ad_token=",
            provider=request.provider,
            model=request.model,
        )


AZURE = AzureOpenAI()
