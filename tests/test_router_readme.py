"""The README's routing example runs as written, and its stack order is the real one."""

from __future__ import annotations

import re
from pathlib import Path

from middlewares import Budget, Callbacks, Deployment, Router, Stats, Telemetry, default_stack

README = Path(__file__).resolve().parent.parent / "README.md"


def routing_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Routing") : text.index("## Providers")]


def test_the_example_config_builds() -> None:
    section = routing_section()
    start = section.index("<!-- routing-example:start -->")
    code = re.search(r"```python\n(.*?)```", section[start:], re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(code.group(1), namespace)
    router = namespace["router"]
    assert isinstance(router, Router)
    assert router.groups == ("chat-fast", "chat-long", "embed")
    assert "azure-eu" in router.snapshot().deployments
    assert router in namespace["pipe"].middlewares  # type: ignore[attr-defined]


def test_the_stack_order_shown_is_default_stacks() -> None:
    shown = re.search(r"\n(Logging -> .*? -> terminal)\n", routing_section())
    assert shown is not None
    router = Router({"g": [Deployment("a/m")]})
    stack = default_stack(
        telemetry=Telemetry(),
        stats=Stats(),
        router=router,
        callbacks=Callbacks(),
        fallbacks=["b/m"],
        budgets=[Budget(1.0)],
    )
    names = [type(layer).__name__ for layer in stack]
    assert [n for n in shown.group(1).split(" -> ") if n != "terminal"] == names
