"""Azure OpenAI (provider name ``azure``): OpenAI's wire format at deployment URLs.

``azure/<deployment>`` calls
``{endpoint}/openai/deployments/{deployment}/{path}?api-version={version}``;
the model name *is* the deployment name. The body leaves ``model`` out (the
URL names it; azure-ai-inference and crewAI send it that way). To send one
anyway, pass ``extra_body={"model": ...}``.

Where each setting comes from, first found wins:

- endpoint: ``api_base=`` per call, ``AzureOpenAI(base_url=...)``, the
  ``base_url_envs`` variables (``AZURE_OPENAI_ENDPOINT``, ``AZURE_API_BASE``);
- API version: ``api_version=`` per call, ``AzureOpenAI(api_version=...)``,
  ``OPENAI_API_VERSION``, ``AZURE_API_VERSION``, else :data:`DEFAULT_API_VERSION`
  (the latest GA data-plane inference version);
- credentials: a Microsoft Entra ID token passed per call as
  ``azure_ad_token=`` (sent as ``Authorization: Bearer``), ``api_key=`` per
  call (sent as ``api-key``), ``AzureOpenAI(api_key=...)``,
  ``AzureOpenAI(ad_token_provider=callable)``, the ``key_envs`` variables
  (``AZURE_OPENAI_API_KEY``, ``AZURE_API_KEY``), ``AZURE_OPENAI_AD_TOKEN``.
  Nothing found is an :class:`~pipeline.errors.AuthenticationError` before
  any I/O.

  The token provider is asked for each request, by the terminal, just before
  sending (:meth:`AzureOpenAI.authorize`): an ``async`` provider is awaited,
  a plain function (azure-identity's ``get_bearer_token_provider`` may block
  on a network refresh) runs in a worker thread, never on the event loop.

  ``azure_ad_token`` travels in the call's params, and params show in a
  request's repr: pass it as a :class:`pipeline.Secret`, or configure an
  ``ad_token_provider``, to keep it out of logs.

A ``developer`` message needs an API version that knows the role
(``2024-12-01-preview`` and later, and the ``v1``/``preview``/``latest``
surfaces); at an older version, the default ``2024-10-21`` among them, it is
sent as ``system``.

Replies carry ``prompt_filter_results`` and per-choice
``content_filter_results``; they are read past. A reply cut by the filter
keeps ``finish_reason="content_filter"``; a prompt the filter rejects (400,
``code: content_filter`` / ``innererror.code: ResponsibleAIPolicyViolation``)
raises :class:`~pipeline.errors.ContentPolicyViolationError`. The first
stream event, with empty ``choices`` and only filter results, yields no chunk.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import ClassVar
from urllib.parse import quote

import anyio.to_thread
import attrs
import httpx

from pipeline.adapter import (
    ALL_ENDPOINTS,
    EMPTY,
    Endpoint,
    Request,
    Secret,
    errors,
    first_env,
    lookup_key,
)
from providers.openai_compatible import DEVELOPER_AS_SYSTEM, OpenAICompatible

DEFAULT_API_VERSION = "2024-10-21"
# The first dated API version with the developer role (the o1 release).
DEVELOPER_ROLE_SINCE = "2024-12-01"

ENDPOINT_ENVS = ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE")
VERSION_ENVS = ("OPENAI_API_VERSION", "AZURE_API_VERSION")
KEY_ENVS = ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"

_PATHS: Mapping[str, str] = MappingProxyType(
    {
        "chat": "chat/completions",
        "embedding": "embeddings",
        "image": "images/generations",
        "transcription": "audio/transcriptions",
        "speech": "audio/speech",
    }
)
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")

TokenProvider = Callable[[], str] | Callable[[], Awaitable[str]]


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _revealed(value: object) -> str | None:
    if isinstance(value, Secret):
        return value.reveal()
    return value if isinstance(value, str) and value else None


@attrs.frozen(kw_only=True)
class AzureOpenAI(OpenAICompatible):
    """Azure OpenAI: deployment URLs, ``api-version``, ``api-key`` or Entra ID token."""

    control_params: ClassVar[frozenset[str]] = OpenAICompatible.control_params | {"azure_ad_token"}
    paths: ClassVar[Mapping[str, str]] = _PATHS

    name: str = "azure"
    base_url: str = ""
    base_url_envs: tuple[str, ...] = ENDPOINT_ENVS
    key_envs: tuple[str, ...] = KEY_ENVS
    endpoints: frozenset[Endpoint] = ALL_ENDPOINTS
    roles: Mapping[str, str] = EMPTY  # developer is known from DEVELOPER_ROLE_SINCE on
    api_version: str | None = None
    ad_token_provider: TokenProvider | None = attrs.field(default=None, repr=False)

    def base(self, request: Request) -> str:
        found = request.api_base or self.base_url or first_env(self.base_url_envs)
        if not found:
            envs = self.base_url_envs
            where = f"set {' or '.join(envs)}, or pass api_base=" if envs else "pass api_base="
            raise errors.InvalidRequestError(
                f"no Azure OpenAI endpoint for {request.provider}: {where}",
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
        address = (
            f"{self.base(request)}/openai/deployments/{deployment}/{self.paths[request.endpoint]}"
        )
        return str(httpx.URL(address, params={"api-version": self.version(request)}))

    def model_field(self, request: Request) -> dict[str, str]:
        return {}

    def roles_for(self, request: Request) -> Mapping[str, str]:
        """``developer`` stays itself from the version that knows it on (and on the
        undated ``v1``/``preview``/``latest`` surfaces); before, it is ``system``
        unless the configured ``roles`` say otherwise."""
        version = self.version(request)
        dated = _DATED.match(version)
        if dated is not None and dated.group() < DEVELOPER_ROLE_SINCE:
            return {**DEVELOPER_AS_SYSTEM, **self.roles} if self.roles else DEVELOPER_AS_SYSTEM
        return self.roles

    def credentials(self, request: Request) -> dict[str, str] | None:
        """The auth header of the first source found; None when it is the token
        provider's turn (asked in :meth:`authorize`). A configured token provider
        comes before the ``key_envs`` and :data:`TOKEN_ENV` variables."""
        token = _revealed(request.params.get("azure_ad_token"))
        if token:
            return _bearer(token)
        provider = self.ad_token_provider
        envs = () if provider is not None else self.key_envs
        key = lookup_key(request, self.api_key, envs, required=False)
        if key:
            return {"api-key": key}
        if provider is not None:
            return None
        token = first_env((TOKEN_ENV,))
        if token:
            return _bearer(token)
        raise errors.AuthenticationError(
            f"no credentials for {request.provider}: set "
            f"{' or '.join((*self.key_envs, TOKEN_ENV))}, or pass api_key= or azure_ad_token=",
            provider=request.provider,
            model=request.model,
        )

    def auth_headers(self, request: Request) -> dict[str, str]:
        return self.credentials(request) or {}

    async def authorize(self, request: Request, http_request: httpx.Request) -> None:
        """Ask the token provider, when it is the credential in use, and add its token."""
        provider = self.ad_token_provider
        if provider is None or self.credentials(request) is not None:
            return
        try:
            if inspect.iscoroutinefunction(provider):
                token: object = await provider()
            else:
                token = await anyio.to_thread.run_sync(provider)
                if inspect.isawaitable(token):
                    token = await token
        except errors.DispatchError:
            raise
        except Exception as exc:
            raise errors.AuthenticationError(
                f"the Azure AD token provider of {request.provider} failed ({type(exc).__name__})",
                provider=request.provider,
                model=request.model,
            ) from exc
        if not isinstance(token, str) or not token:
            raise errors.AuthenticationError(
                f"the Azure AD token provider of {request.provider} returned no token",
                provider=request.provider,
                model=request.model,
            )
        http_request.headers.update(_bearer(token))


AZURE = AzureOpenAI()
