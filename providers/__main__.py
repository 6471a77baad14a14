"""``python -m providers``: the provider x endpoint capability table, as Markdown.

It lists every built-in provider (installed plugins too, unless
``--builtin`` is given), one row each, a check mark per endpoint it offers;
the README's table is this output.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from pipeline.adapter import ENDPOINTS
from providers import default_registry


def capability_table(capabilities: Mapping[str, frozenset[str]]) -> str:
    """Markdown: one row per provider (sorted), one column per endpoint."""
    lines = [
        "| provider | " + " | ".join(ENDPOINTS) + " |",
        "|---|" + "|".join(":-:" for _ in ENDPOINTS) + "|",
    ]
    for name in sorted(capabilities):
        offered = capabilities[name]
        marks = " | ".join("✓" if endpoint in offered else " " for endpoint in ENDPOINTS)
        lines.append(f"| {name} | {marks} |")
    lines.append("")
    lines.append(f"{len(capabilities)} providers.")
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> str:
    registry = default_registry(load_entry_points="--builtin" not in argv)
    return capability_table(registry.capabilities())


if __name__ == "__main__":
    print(main(sys.argv[1:]))
