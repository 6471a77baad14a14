"""The ``"dispatchline"`` structlog logger, imported on first use.

structlog pulls in its development console (and rich, where installed) when
imported: tens of milliseconds that ``import middlewares`` need not pay.
"""

from __future__ import annotations

from typing import Any

_logger: Any = None


def logger() -> Any:
    global _logger
    if _logger is None:
        import structlog

        _logger = structlog.get_logger("dispatchline")
    return _logger
