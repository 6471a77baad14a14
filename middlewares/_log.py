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


def forget() -> None:
    """Drop the shared logger: the next :func:`logger` call gets a new one.

    With ``cache_logger_on_first_use=True`` a structlog logger keeps the
    configuration it first logged with; after a reconfiguration (the benchmarks
    restore the caller's), a new one picks up the current one.
    """
    global _logger
    _logger = None
