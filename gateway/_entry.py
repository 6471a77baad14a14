"""The ``dispatchline`` console script: runs the CLI, or says which extra to install."""

from __future__ import annotations

import sys

REQUIRED = ("click", "starlette", "uvicorn")


def main() -> None:
    missing = []
    for name in REQUIRED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.stderr.write(
            "dispatchline: the command needs the [gateway] extra "
            f"(missing: {', '.join(missing)}). Install it with:\n"
            "    pip install 'dispatchline[gateway]'\n"
        )
        raise SystemExit(1)
    from gateway.cli import cli

    cli()
