"""What an adapter does with each OpenAI parameter: send, translate, rename, drop or refuse.

Every adapter declares a :class:`ParamPolicy` per endpoint. Before a body is
built, :meth:`ParamPolicy.apply` sorts the call's parameters:

- ``send``: the provider has the same field; sent as given;
- ``translate``: the adapter's own code converts it (``stop`` to
  ``stop_sequences``, ``response_format`` to a schema field...); each is
  mapped to a few words saying what it becomes, for the README's table;
- ``rename``: sent under the provider's name, value unchanged (Mistral's
  ``seed`` is ``random_seed``);
- ``drop``: dropped quietly, because it has no effect on the output here
  (``user``, ``store``) or asks for what the provider always does
  (``stream_options``: usage always comes);
- ``fixed``: only one value is what the provider does anyway (``n=1``,
  ``parallel_tool_calls=True``): that value is dropped, any other refused;
- ``only``: the provider has the field but takes one value (Groq's ``n``):
  that value is sent, any other refused;
- everything else OpenAI defines is refused (or sent, for a policy whose
  ``others`` is ``"send"``: a server that speaks OpenAI's API).

A refused parameter is an :class:`~pipeline.errors.InvalidRequestError` before
any I/O, naming the parameter and the provider, unless the call (or the
pipeline) says ``drop_params=True``: then it is dropped and the drop logged.
A parameter that is not OpenAI's (a provider's own option) passes through.
A value of ``None`` means "not given" and is never refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from pipeline import errors
from pipeline._request import Endpoint, Request

Handling = Literal["send", "translate", "rename", "drop", "fixed", "only", "refuse"]

# OpenAI's chat-completion parameters (the openai SDK's ``completion_create_params``),
# less ``model``, ``messages`` and ``stream`` (fields of every request) and
# ``metadata`` (here a call option for middlewares, never sent).
OPENAI_CHAT_PARAMS: frozenset[str] = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "modalities",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
OPENAI_PARAMS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "chat": OPENAI_CHAT_PARAMS,
        "embedding": frozenset({"dimensions", "encoding_format", "user"}),
    }
)

_NOTHING: Mapping[str, Any] = MappingProxyType({})

# Parameters with no effect on the output (who the end user is, whether OpenAI
# stores the completion, prompt-cache hints): dropped where a provider lacks them.
ADVISORY_PARAMS: frozenset[str] = frozenset(
    {
        "user",
        "safety_identifier",
        "store",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
    }
)


def _names(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class ParamPolicy:
    """One adapter's handling of OpenAI's parameters for one endpoint (see the module doc)."""

    endpoint: Endpoint = "chat"
    send: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    translate: Mapping[str, str] = _NOTHING
    rename: Mapping[str, str] = _NOTHING
    drop: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    fixed: Mapping[str, object] = _NOTHING
    only: Mapping[str, object] = _NOTHING
    refuse: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    others: Literal["send", "refuse"] = "refuse"
    _table: Mapping[str, tuple[Handling, Any]] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        table: dict[str, tuple[Handling, Any]] = {}
        groups: list[tuple[Handling, Iterable[str], Mapping[str, Any]]] = [
            ("send", self.send, _NOTHING),
            ("translate", self.translate, self.translate),
            ("rename", self.rename, self.rename),
            ("drop", self.drop, _NOTHING),
            ("fixed", self.fixed, self.fixed),
            ("only", self.only, self.only),
            ("refuse", self.refuse, _NOTHING),
        ]
        for how, names, values in groups:
            for name in names:
                if name in table:
                    raise ValueError(f"{name!r} is both {table[name][0]} and {how}")
                table[name] = (how, values.get(name))
        for name in OPENAI_PARAMS.get(self.endpoint, frozenset()) - table.keys():
            table[name] = (self.others, None)
        if self.others == "send":  # only the exceptions need looking at
            table = {k: v for k, v in table.items() if v[0] != "send"}
        object.__setattr__(self, "_table", MappingProxyType(table))

    @property
    def speaks_openai(self) -> bool:
        """Whether every OpenAI parameter is sent as given."""
        return self.others == "send" and not self._table

    def handling(self, name: str) -> tuple[Handling, Any] | None:
        """What happens to OpenAI's parameter ``name``, and with what: the field it
        is renamed to, what it is translated into, the one value it may take
        (None: not one of OpenAI's parameters)."""
        found = self._table.get(name)
        if found is not None:
            return found
        return (self.others, None) if name in OPENAI_PARAMS.get(self.endpoint, ()) else None

    def apply(self, request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters to build the body from: renamed, with the dropped ones gone.

        Raises :class:`~pipeline.errors.InvalidRequestError` for a parameter the
        provider cannot honour, unless ``drop_params`` is set on the request.
        """
        table = self._table
        out = dict(params)
        if not table:
            return out
        refused: list[str] = []
        for name, value in params.items():
            entry = table.get(name)
            if entry is None or entry[0] in ("send", "translate"):
                continue
            how, arg = entry
            if how == "only" and value in (arg, None):
                continue
            del out[name]
            if how == "rename":
                if value is not None and out.get(arg, value) not in (value, None):
                    raise _invalid(request, f"{name} and {arg} disagree: give one")
                if value is not None or arg not in out:
                    out[arg] = value
            elif value is None or how == "drop" or (how == "fixed" and value == arg):
                continue
            else:
                limited = how in ("fixed", "only")
                refused.append(f"{name}={value!r} (only {arg!r})" if limited else name)
        if refused:
            _refuse(request, refused)
        return out


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        f"{request.provider}: {message}", provider=request.provider, model=request.model
    )


def _refuse(request: Request, refused: list[str]) -> None:
    if not request.options.get("drop_params"):
        what = ", ".join(refused)
        raise _invalid(
            request,
            f"cannot honour the OpenAI parameter{'s' if len(refused) > 1 else ''} {what}; "
            "leave it out, or pass drop_params=True to drop what a provider cannot do",
        )
    import structlog  # only when something is dropped: keeps the import off the hot path

    structlog.get_logger("dispatchline.providers").info(
        "params_dropped",
        provider=request.provider,
        model=request.model,
        params=[item.partition("=")[0] for item in refused],
    )
