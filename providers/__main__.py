"""``python -m providers``: the provider x endpoint capability table, as Markdown;
``python -m providers params``: what each provider does with OpenAI's chat parameters.

Both list every built-in provider (installed plugins too, unless
``--builtin`` is given); the README's tables are this output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence

from pipeline.adapter import ENDPOINTS, OPENAI_CHAT_PARAMS, Adapter, ParamPolicy
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


def chat_policy(adapter: Adapter) -> ParamPolicy | None:
    policies = getattr(adapter, "params", None)
    policy = policies.get("chat") if isinstance(policies, Mapping) else None
    return policy if isinstance(policy, ParamPolicy) else None


def _cell(policy: ParamPolicy, name: str) -> str:
    found = policy.handling(name)
    how, arg = found if found is not None else ("send", None)
    if how in ("send", "refuse", "drop"):
        return {"send": "✓", "refuse": "✗", "drop": "dropped"}[how]
    if how in ("fixed", "only"):
        return f"only `{json.dumps(arg)}`"
    return f"→ `{arg}`" if how == "rename" else f"→ {arg}"


def params_table(adapters: Mapping[str, Adapter]) -> str:
    """Markdown: one row per OpenAI chat parameter, one column per provider that
    does not take every one of them as given."""
    policies = {name: chat_policy(adapters[name]) for name in sorted(adapters)}
    shown = {
        name: policy
        for name, policy in policies.items()
        if policy is not None and not policy.speaks_openai
    }
    lines = [
        "| parameter | " + " | ".join(shown) + " |",
        "|---|" + "|".join("---" for _ in shown) + "|",
    ]
    for param in sorted(OPENAI_CHAT_PARAMS):
        cells = " | ".join(_cell(policy, param) for policy in shown.values())
        lines.append(f"| `{param}` | {cells} |")
    same = sorted(name for name, policy in policies.items() if name not in shown)
    lines.append("")
    lines.append(f"Every other provider ({len(same)}) takes every parameter as given.")
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> str:
    registry = default_registry(load_entry_points="--builtin" not in argv)
    if "params" in argv:
        return params_table(registry.adapters)
    return capability_table(registry.capabilities())


if __name__ == "__main__":
    print(main(sys.argv[1:]))
