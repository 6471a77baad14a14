"""``create_app``: the OpenAI-compatible service, a Starlette app over a Pipeline.

>>> from gateway import create_app
>>> app = create_app(pipeline, master_key="sk-...")         # serve your own pipeline
>>> app = create_app(config="dispatchline.toml")            # or build it from a config file

No global state: the routes table, one ASGI middleware (:class:`gateway._guard.Guard`)
and the lifespan, which starts the :class:`gateway._state.Gateway` held in
``app.state.gateway``. Serve it with uvicorn (``dispatchline serve``), or with
hypercorn on trio (``hypercorn --worker-class trio 'gateway.app:from_environment()'``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import _ops, _seed
from gateway._errors import answer
from gateway._guard import BodyTooLarge, Guard, too_large
from gateway._openai import (
    chat_completions,
    embeddings,
    get_model,
    image_generations,
    list_models,
    speech,
    transcriptions,
)
from gateway._state import Gateway
from gateway.config import MASTER_KEY_ENV, Config, load_config, parse_config
from pipeline import Pipeline, errors

CONFIG_ENV = "DISPATCHLINE_CONFIG"  # the config file for from_environment()


def _openai_routes(prefix: str) -> list[BaseRoute]:
    return [
        Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
        Route(f"{prefix}/embeddings", embeddings, methods=["POST"]),
        Route(f"{prefix}/images/generations", image_generations, methods=["POST"]),
        Route(f"{prefix}/audio/transcriptions", transcriptions, methods=["POST"]),
        Route(f"{prefix}/audio/speech", speech, methods=["POST"]),
        Route(f"{prefix}/models", list_models, methods=["GET"]),
        Route(prefix + "/models/{model_id:path}", get_model, methods=["GET"]),
    ]


ROUTES: list[BaseRoute] = [
    *_openai_routes("/v1"),
    *_openai_routes(""),
    Route("/api/v1/health", _seed.health, methods=["GET"]),
    Route("/api/v1/chat/completions", _seed.chat, methods=["POST"]),
    Route("/api/v1/chat/completions/stream", _seed.chat_stream, methods=["POST"]),
    Route("/api/v1/test/vendor", _seed.test_vendor, methods=["POST"]),
    Route("/api/v1/stats", _ops.stats, methods=["GET"]),
    Route("/api/v1/vendors", _seed.vendor_list, methods=["GET"]),
    Route("/health/liveliness", _ops.liveliness, methods=["GET"]),
    Route("/health/liveness", _ops.liveliness, methods=["GET"]),
    Route("/health/readiness", _ops.readiness, methods=["GET"]),
    Route("/metrics", _ops.metrics, methods=["GET"]),
    Route("/admin/reload", _ops.reload, methods=["POST"]),
]


async def _dispatch_error(request: Request, exc: Exception) -> Response:
    found = answer(exc)
    return JSONResponse(found.body, found.status, found.headers)


async def _too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    return JSONResponse(too_large(exc.limit), 413)


async def _http_error(request: Request, exc: Exception) -> Response:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    message = f"no route {request.method} {request.url.path}"
    if exc.status_code not in (404, 405):
        code, message = "http_error", str(exc.detail)
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return JSONResponse(body, exc.status_code, exc.headers)


def create_app(
    pipeline: Pipeline | None = None,
    *,
    config: Config | str | Path | None = None,
    master_key: str | None = None,
    watch_sighup: bool = False,
) -> Starlette:
    """The gateway app over ``pipeline``, or over the pipeline a config file describes.

    ``master_key`` (else ``DISPATCHLINE_MASTER_KEY``) is required of callers
    when given; with a config, its ``[server]`` keys apply. A pipeline you pass
    stays yours: the app enters it for its lifespan's middlewares but closes
    only pipelines it built. ``watch_sighup=True`` reloads the config on SIGHUP
    (``dispatchline serve`` turns it on).
    """
    from starlette.exceptions import HTTPException

    if isinstance(config, (str, Path)):
        config = load_config(config)
    gateway = Gateway(
        pipeline=pipeline,
        config=config,
        master_key=master_key or os.environ.get(MASTER_KEY_ENV) or None,
        watch_sighup=watch_sighup,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.running():
            yield

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(Guard, gateway=gateway)],
        exception_handlers={
            errors.DispatchError: _dispatch_error,
            BodyTooLarge: _too_large,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app


def from_environment() -> Starlette:
    """The app for the config file named by ``DISPATCHLINE_CONFIG``, else the
    defaults (uvicorn's ``--factory``, and each worker of ``dispatchline serve
    --workers N``, build their app with it)."""
    path = os.environ.get(CONFIG_ENV)
    return create_app(config=load_config(path) if path else parse_config({}), watch_sighup=True)
