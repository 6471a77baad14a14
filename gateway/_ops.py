"""Operations routes: probes, Prometheus metrics, statistics, reload.

Statistics come from a ``Stats`` middleware when the pipeline has one; without
it, ``/api/v1/stats`` gives the gateway's own request counts and ``/metrics``
answers 404 saying how to turn statistics on. Both show the shared view
(``await stats.asnapshot()``, ``await stats.aprometheus()``): with ``[redis]``
sharing statistics, every worker's counts, whichever worker answers (a
scrape of one port served by several workers reaches any one of them, so
only the sum is worth scraping); without it, this process's. The seed's
top-level counts (``total_requests``...) are this worker's own.
"""

from __future__ import annotations

import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway._errors import body
from gateway._guard import SCOPE_KEY, Call
from gateway._reader import ConfigError
from gateway._state import Gateway, Generation
from pipeline import errors


def gateway_of(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


def find_stats(generation: Generation) -> Any:
    """The pipeline's Stats middleware, or None."""
    from middlewares import Stats

    return generation.find(lambda m: isinstance(m, Stats))


def find_router(generation: Generation) -> Any:
    return generation.find(lambda m: getattr(m, "groups", None) is not None)


async def liveliness(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readiness(request: Request) -> Response:
    gateway = gateway_of(request)
    if not gateway.ready:
        return JSONResponse({"status": "not ready"}, status_code=503)
    return JSONResponse({"status": "ready", "in_flight": gateway.current.in_flight})


async def metrics(request: Request) -> Response:
    gateway = gateway_of(request)
    stats = find_stats(gateway.current) if gateway.ready else None
    if stats is None:
        message = "no statistics are kept: the pipeline has no Stats middleware"
        return JSONResponse(body(message, "invalid_request_error", "stats_disabled"), 404)
    text = await stats.aprometheus()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def stats_payload(gateway: Gateway) -> dict[str, Any]:
    """The seed's top-level counts, plus this process's Stats snapshot (targets,
    deployments) when kept."""
    generation = gateway.current
    finished = gateway.requests - generation.in_flight
    last = gateway.last_request
    out: dict[str, Any] = {
        "total_requests": gateway.requests,
        "successful_requests": max(0, finished - gateway.failures),
        "failed_requests": gateway.failures,
        "in_flight": generation.in_flight,
        "last_request_time": _iso(last) if last is not None else None,
    }
    stats = find_stats(generation)
    if stats is not None:
        out.update(stats.snapshot().to_dict())
    return out


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def stats(request: Request) -> Response:
    gateway = gateway_of(request)
    out = stats_payload(gateway)
    found = find_stats(gateway.current)
    if found is not None:  # every worker's targets and deployments
        out.update((await found.asnapshot()).to_dict())
    return JSONResponse(out)


async def reload(request: Request) -> Response:
    call: Call = request.scope[SCOPE_KEY]
    if not call.key.admin:
        raise errors.PermissionDeniedError("reloading needs the master key", code="admin_only")
    gateway = gateway_of(request)
    try:
        await gateway.reload()
    except ConfigError as exc:
        return JSONResponse(body(str(exc), "invalid_request_error", "invalid_config"), 400)
    except RuntimeError as exc:
        return JSONResponse(body(str(exc), "invalid_request_error", "no_config_file"), 409)
    return JSONResponse({"status": "reloaded", "config": str(gateway.config_path)})


def credentials_present(adapter: Any) -> bool:
    """Whether a provider has what it needs to be called: a configured key, a key
    in its environment variable(s), or no need for one. Best effort, by its fields."""
    if getattr(adapter, "api_key", None) is not None:
        return True
    names = getattr(adapter, "key_envs", None)
    if names is None:
        single = getattr(adapter, "key_env", "")
        if single is None:
            return True  # a local server: no key
        names = (single,) if single else ()
    return not names or any(os.environ.get(name) for name in names)


def vendors(generation: Generation) -> list[dict[str, Any]]:
    adapters = generation.pipeline.registry.adapters
    return [{"name": n, "enabled": credentials_present(adapters[n])} for n in sorted(adapters)]
