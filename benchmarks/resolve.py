"""The real path against an if/elif resolver doing the same job.

Real path: ``pipeline.resolve_target(registry, "provider_i/model")`` with N
``OpenAICompatible`` providers registered, then the adapter from the
registry's dict, which is what a pipeline does per request before any I/O.
The if/elif resolver does the same job in the shape of a chain: validate the
model string, split off the provider name, compare it against every name in
turn, and return that provider's adapter with the model name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from benchmarks.fresh import Case, Samples, time_cases
from benchmarks.lookup import provider_names
from benchmarks.stats import Summary, summarize
from pipeline import errors
from pipeline._resolve import resolve_target
from pipeline.adapter import Adapter
from providers import OpenAICompatible, ProviderRegistry

Resolve = Callable[[str], tuple[Adapter, str]]

MODEL = "bench-model"


def registry_of(names: Sequence[str]) -> ProviderRegistry:
    """N OpenAI-compatible providers, each a row with its own base URL."""
    return ProviderRegistry(
        OpenAICompatible(name=name, base_url=f"http://127.0.0.1:9/{name}/v1") for name in names
    )


def real_resolver(registry: ProviderRegistry) -> Resolve:
    adapters = registry.adapters

    def resolve(model: str) -> tuple[Adapter, str]:
        name, model_name = resolve_target(registry, model)
        return adapters[name], model_name

    return resolve


def ifelif_resolver_source(names: Sequence[str]) -> str:
    lines = [
        "def resolve(model):",
        "    if not isinstance(model, str) or not model.strip():",
        "        raise InvalidRequestError('model must be a non-empty string')",
        "    provider, sep, model_name = model.partition('/')",
        "    if not sep or not model_name:",
        "        raise InvalidRequestError('model must be provider/model')",
    ]
    for i, name in enumerate(names):
        lines.append(f"    {'if' if i == 0 else 'elif'} provider == {name!r}:")
        lines.append(f"        return adapter_{i}, model_name")
    lines.append("    raise ProviderNotFoundError(f'no provider {provider!r}')")
    return "\n".join(lines) + "\n"


def ifelif_resolver(adapters: Mapping[str, Adapter]) -> Resolve:
    names = list(adapters)
    namespace: dict[str, Any] = {
        "InvalidRequestError": errors.InvalidRequestError,
        "ProviderNotFoundError": errors.ProviderNotFoundError,
    }
    namespace.update({f"adapter_{i}": adapters[name] for i, name in enumerate(names)})
    source = ifelif_resolver_source(names)
    exec(compile(source, f"<if/elif resolver over {len(names)} names>", "exec"), namespace)
    resolve: Resolve = namespace["resolve"]
    return resolve


def model_strings(names: Sequence[str]) -> list[str]:
    """``provider_i/bench-model``, built at run time like a user's string."""
    return ["/".join((name, MODEL)) for name in names]


def measure(config: dict[str, Any]) -> Samples:
    """One round: real and if/elif, average over every name and the last name."""
    cases: list[Case] = []
    for n in config["sizes"]:
        names = provider_names(n)
        registry = registry_of(names)
        models = model_strings(names)  # registration order: the chain's order
        for strategy, resolve in (
            ("real", real_resolver(registry)),
            ("ifelif", ifelif_resolver(registry.adapters)),
        ):
            every = {"_f": resolve, "_k": models[-1], "_ks": models}
            cases.append(Case(f"{n}/{strategy}/average", "for k in ks: f(k)", every, n))
            cases.append(Case(f"{n}/{strategy}/last", "f(k)", every))
    return time_cases(cases, config)


@attrs.frozen
class ResolveRow:
    """Nanoseconds per resolve + adapter lookup at one N."""

    n: int
    real_avg: Summary
    real_last: Summary
    ifelif_avg: Summary
    ifelif_worst: Summary


def rows(samples: Samples, sizes: Sequence[int]) -> list[ResolveRow]:
    def get(n: int, case: str) -> Summary:
        return summarize(samples[f"{n}/{case}"])

    return [
        ResolveRow(
            n=n,
            real_avg=get(n, "real/average"),
            real_last=get(n, "real/last"),
            ifelif_avg=get(n, "ifelif/average"),
            ifelif_worst=get(n, "ifelif/last"),
        )
        for n in sizes
    ]
