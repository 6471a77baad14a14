"""Optional libraries: imported when a piece that needs one is built, never at import time."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "missing", "require"]


class MissingExtraError(ImportError):
    """A usage middleware needs an optional library that is not installed.

    The message names the extra that brings it: ``pip install 'dispatchline[prices]'``.
    """


def missing(module: str, extra: str, needed_by: str) -> MissingExtraError:
    """The error saying ``needed_by`` needs ``module``, from the ``extra``."""
    return MissingExtraError(
        f"{needed_by} needs {module.partition('.')[0]}, which is not installed: "
        f"pip install 'dispatchline[{extra}]'"
    )


def require(module: str, extra: str, needed_by: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, extra, needed_by) from exc
