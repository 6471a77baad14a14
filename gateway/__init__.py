"""The gateway: an OpenAI-compatible HTTP service over a Pipeline, and the ``dispatchline`` CLI.

>>> from gateway import create_app
>>> app = create_app(pipeline, master_key="sk-...")      # an ASGI app (Starlette)
>>> app = create_app(config="dispatchline.toml")

Needs the ``[gateway]`` extra (starlette, uvicorn, click). Names are imported
on first use, so the ``dispatchline`` command can say which extra is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway._reader import ConfigError
    from gateway.app import create_app, from_environment
    from gateway.config import Config, ServerConfig, load_config, parse_config

__all__ = [
    "Config",
    "ConfigError",
    "ServerConfig",
    "create_app",
    "from_environment",
    "load_config",
    "parse_config",
]

_LAZY = {
    "Config": "gateway.config",
    "ConfigError": "gateway._reader",
    "ServerConfig": "gateway.config",
    "create_app": "gateway.app",
    "from_environment": "gateway.app",
    "load_config": "gateway.config",
    "parse_config": "gateway.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
