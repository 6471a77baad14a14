"""The base every built-in adapter derives from: the plumbing written once.

A subclass says where its endpoints live (``paths``), how its key is sent
(``key_header``/``key_prefix``), what it does with each OpenAI parameter
(``params``), and writes one method per endpoint it offers:
``<endpoint>_body(request, params) -> dict`` and
``parse_<endpoint>(request, response)``, plus ``stream_decoder`` and
``parse_error``; an endpoint whose body is not JSON (a multipart upload)
overrides ``<endpoint>_content(request, params)`` instead. Those methods are
looked up on the instance, so a subclass that overrides one is the one called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline import errors
from pipeline._adapter_helpers import parsing, timeout_extensions
from pipeline._adapter_http import request_for
from pipeline._adapter_params import ParamPolicy
from pipeline._request import ENDPOINTS, Endpoint, Request
from pipeline._responses import AnyResponse
from pipeline._secrets import Secret

CHAT: frozenset[Endpoint] = frozenset({"chat"})
CHAT_EMBEDDING: frozenset[Endpoint] = frozenset({"chat", "embedding"})
ALL_ENDPOINTS: frozenset[Endpoint] = frozenset(ENDPOINTS)

EMPTY: Mapping[str, Any] = MappingProxyType({})

_BODY_METHODS = {endpoint: f"{endpoint}_body" for endpoint in ENDPOINTS}
_CONTENT_METHODS = {endpoint: f"{endpoint}_content" for endpoint in ENDPOINTS}
_PARSE_METHODS = {endpoint: f"parse_{endpoint}" for endpoint in ENDPOINTS}


def first_env(names: Iterable[str]) -> str | None:
    """The value of the first of ``names`` set (non-empty) in the environment."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def lookup_key(
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


def _mapping(request: Request, name: str) -> Mapping[str, Any]:
    value = request.params.get(name)
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise errors.InvalidRequestError(
            f"{name} must be a dict, got {type(value).__name__}",
            provider=request.provider,
            model=request.model,
        )
    return value


@attrs.frozen(kw_only=True)
class HTTPAdapter:
    """Configuration and plumbing shared by adapters of an HTTP JSON API.

    Every adapter has these settings:

    - ``name``: what users write before the slash (``"acme/<model>"``);
    - ``base_url``: the server's root; ``api_base=`` per call overrides it,
      and so does the first set variable of ``base_url_envs``;
    - ``key_envs``: environment variables that may hold the key (first set
      wins); ``api_key``: a key configured in code (a :class:`Secret`);
      ``api_key=`` per call beats both;
    - ``headers``: sent with every request; ``timeout``: default seconds per
      request (None: the pipeline's);
    - ``endpoints``: what it offers; ``params``: per endpoint, what it does
      with each OpenAI parameter (:class:`ParamPolicy`);
    - ``priority``, ``models``, ``prefixes``: the bare model names it claims
      for auto-detection (a higher priority wins a contested one);
    - ``transport``: its own httpx transport instead of the pipeline's pool.

    Per call, ``extra_headers`` are sent as headers and ``extra_body`` is
    merged into the JSON body last, as in the openai SDK.
    """

    name: str
    base_url: str = ""
    base_url_envs: tuple[str, ...] = ()
    key_envs: tuple[str, ...] = ()
    api_key: Secret | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = EMPTY
    timeout: float | None = None
    endpoints: frozenset[Endpoint] = CHAT
    params: Mapping[str, ParamPolicy] = EMPTY
    priority: int = 0
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    # What a subclass declares.
    paths: ClassVar[Mapping[str, str]] = EMPTY  # endpoint -> path after the base URL
    # No key at all, while ``key_envs`` names some: AuthenticationError before I/O.
    key_required: ClassVar[bool] = True
    key_header: ClassVar[str] = "authorization"
    key_prefix: ClassVar[str] = "Bearer "
    # Call parameters that shape the HTTP request, never the body.
    control_params: ClassVar[frozenset[str]] = frozenset({"extra_headers", "extra_body"})

    # -- addressing and credentials --------------------------------------

    def key(self, request: Request) -> str | None:
        """Per call, else configured, else the environment (no ``key_envs``: no key needed)."""
        required = self.key_required and bool(self.key_envs)
        return lookup_key(
            request, self.api_key, self.key_envs, required=required, provider=self.name
        )

    def auth_headers(self, request: Request) -> dict[str, str]:
        key = self.key(request)
        return {self.key_header: self.key_prefix + key} if key else {}

    def headers_for(self, request: Request) -> dict[str, str]:
        """Headers of every request: the configured ones and the credentials."""
        return {**self.headers, **self.auth_headers(request)}

    def base(self, request: Request) -> str:
        """Per-call ``api_base``, else the first set ``base_url_envs``, else ``base_url``."""
        return (request.api_base or first_env(self.base_url_envs) or self.base_url).rstrip("/")

    def url(self, request: Request) -> str:
        return self.base(request) + self.paths[request.endpoint]

    # -- build -------------------------------------------------------------

    def body_params(self, request: Request) -> dict[str, Any]:
        """The call's parameters minus the control ones, sorted by the endpoint's policy."""
        params = {k: v for k, v in request.params.items() if k not in self.control_params}
        if "stream" in params and (request.endpoint != "chat" or params["stream"] is None):
            del params["stream"]  # only a chat body says whether it streams: the call decides
        elif params.get("stream", request.stream) != request.stream:
            raise errors.InvalidRequestError(
                "stream is chosen by the call (stream=True), not by a parameter",
                provider=request.provider,
                model=request.model,
            )
        policy = self.params.get(request.endpoint)
        return policy.apply(request, params) if policy is not None else params

    def content(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """``httpx.Request`` keyword arguments for the body, from the endpoint's
        ``<endpoint>_content``: :meth:`json_content` unless the adapter sends
        that endpoint otherwise (a multipart upload)."""
        content: dict[str, Any] = getattr(self, _CONTENT_METHODS[request.endpoint])(request, params)
        return content

    def json_content(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """JSON from ``<endpoint>_body``, with ``extra_body`` merged in last."""
        body: dict[str, Any] = getattr(self, _BODY_METHODS[request.endpoint])(request, params)
        body.update(_mapping(request, "extra_body"))
        return {"json": body}

    chat_content = embedding_content = image_content = json_content
    transcription_content = speech_content = json_content

    def build(self, request: Request) -> httpx.Request:
        content = self.content(request, self.body_params(request))
        headers = {**self.headers_for(request), **_mapping(request, "extra_headers")}
        return request_for(self.url(request), headers, content, timeout_extensions(self.timeout))

    # -- parse -------------------------------------------------------------

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            parsed: AnyResponse = getattr(self, _PARSE_METHODS[request.endpoint])(request, response)
            return parsed
