"""Routing rules: which group (or ``provider/model``) a call goes to, first match wins."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["RoutingRule", "first_match", "tag_set"]


def tag_set(tags: Iterable[str]) -> frozenset[str]:
    if isinstance(tags, str):
        raise ValueError(f"tags is a collection of strings, got the string {tags!r}")
    return frozenset(tags)


def _bound(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
    ):
        raise ValueError(
            f"RoutingRule {attribute.name} must be a number >= 0 or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RoutingRule:
    """Send matching calls to ``target``: a group name or a ``"provider/model"``.

    - ``model``: a glob (``"gpt-4*"``) matched against the model string as the
      caller wrote it;
    - ``max_tokens``: the call's own ``max_tokens`` (or
      ``max_completion_tokens``) must be present and at most this;
    - ``max_temperature``: the call's ``temperature`` must be present and at
      most this;
    - ``tags``: all must be in the call's ``metadata={"tags": [...]}``.

    A bound on a parameter the call did not give does not match: the
    provider's default is not known here.
    """

    target: str
    model: str = "*"
    max_tokens: int | None = attrs.field(default=None, validator=_bound)
    max_temperature: float | None = attrs.field(default=None, validator=_bound)
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=tag_set)
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"RoutingRule target must be a non-empty string, got {self.target!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"RoutingRule model must be a glob string, got {self.model!r}")
        object.__setattr__(self, "_pattern", re.compile(fnmatch.translate(self.model)))

    def matches(
        self, model: str, params: Mapping[str, Any], metadata: Mapping[str, Any] | None
    ) -> bool:
        if self._pattern.match(model) is None:
            return False
        if self.max_tokens is not None:
            asked = params.get("max_tokens", params.get("max_completion_tokens"))
            if not isinstance(asked, int) or asked > self.max_tokens:
                return False
        if self.max_temperature is not None:
            temperature = params.get("temperature")
            if not isinstance(temperature, int | float) or temperature > self.max_temperature:
                return False
        if self.tags:
            given = (metadata or {}).get("tags") or ()
            if not self.tags.issubset(given):
                return False
        return True


def first_match(
    rules: Sequence[RoutingRule],
    model: str,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
) -> RoutingRule | None:
    for rule in rules:
        if rule.matches(model, params, metadata):
            return rule
    return None
