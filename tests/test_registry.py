"""The registry: a dict of adapters, plugins through entry points, failures isolated."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline import Pipeline
from pipeline.adapter import Adapter
from providers import ProviderRegistry, capabilities, default_registry, mock_provider

pytestmark = pytest.mark.anyio


async def test_dict_like_operations() -> None:
    registry = ProviderRegistry()
    adapter = mock_provider("alpha")
    registry.register(adapter)
    assert "alpha" in registry and "beta" not in registry
    assert registry.get("alpha") is adapter and registry["alpha"] is adapter
    assert registry.get("beta") is None
    assert registry.names() == ["alpha"]
    assert len(registry) == 1
    with pytest.raises(ValueError, match="already registered"):
        registry.register(mock_provider("alpha"))
    registry.register(mock_provider("alpha"), replace=True)
    assert registry["alpha"] is not adapter
    registry.unregister("alpha")
    assert "alpha" not in registry


async def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="without '/'"):
        ProviderRegistry([mock_provider("a/b")])
    with pytest.raises(ValueError, match="non-empty"):
        ProviderRegistry([mock_provider("")])


async def test_builtin_adapters_satisfy_the_protocol() -> None:
    registry = default_registry(load_entry_points=False)
    assert "mock" in registry and "openai" in registry
    for name in registry.names():
        assert isinstance(registry[name], Adapter), name
    caps = capabilities()
    assert caps["openai"] == {"chat", "embedding", "image", "transcription", "speech"}


async def test_provider_registered_after_pipeline_is_built_is_found() -> None:
    registry = ProviderRegistry([mock_provider("mock")])
    pipe = Pipeline(registry=registry)
    registry.register(mock_provider("late"))
    resp = await pipe.acompletion("late/m", [{"role": "user", "content": "x"}])
    assert resp.provider == "late"


def _install_plugin(root: Path) -> None:
    dist = root / "fakeplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [dispatchline.providers]
            good = fakeplugin_good:make
            many = fakeplugin_good:make_two
            broken = fakeplugin_missing:adapter
            notadapter = fakeplugin_good:NOT_AN_ADAPTER
            """
        )
    )
    (root / "fakeplugin_good.py").write_text(
        textwrap.dedent(
            """\
            from providers import mock_provider

            NOT_AN_ADAPTER = 42

            def make():
                return mock_provider("plugin_one")

            def make_two():
                return [mock_provider("plugin_two"), mock_provider("plugin_three")]
            """
        )
    )


async def test_entry_point_plugins_load_and_failures_are_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with capture_logs() as logs:
        registry = default_registry()
    assert {"plugin_one", "plugin_two", "plugin_three"} <= set(registry.names())
    assert "openai" in registry  # built-ins unaffected
    assert set(registry.load_errors) == {"broken", "notadapter"}
    assert "ModuleNotFoundError" in registry.load_errors["broken"]
    failed = [e for e in logs if e["event"] == "provider_load_failed"]
    assert {e["entry_point"] for e in failed} == {"broken", "notadapter"}
    resp = await Pipeline(registry=registry).acompletion(
        "plugin_two/m", [{"role": "user", "content": "hey"}]
    )
    assert resp.choices[0].message.content == "echo: hey"
