"""Router test plumbing: a scripted terminal per deployment, requests built as pipelines do."""

from __future__ import annotations

import inspect
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

import anyio

from middlewares.router import Router
from pipeline import ChatResponse, Pipeline, Request, Result, Usage
from pipeline.adapter import Choice, Message
from providers import ProviderRegistry
from tests._scripted_replies import HI, FakeClock, Sleeps

__all__ = ["HI", "FakeClock", "Sleeps", "Terminal", "answer", "build", "held", "timed"]


def answer(text: str = "ok", total_tokens: int = 10) -> ChatResponse:
    return ChatResponse(
        choices=[Choice(message=Message(content=text))],
        usage=Usage(prompt_tokens=total_tokens - 1, completion_tokens=1, total_tokens=total_tokens),
    )


Reply = Result | BaseException | Callable[[Request], Any]


class Terminal:
    """Stands in for everything inside the router: answers each deployment from
    its script (a list consumed in order, or one reply for every call), and
    records which deployment each call went to."""

    def __init__(self, default: Reply | None = None, **scripts: Reply | list[Reply]) -> None:
        self.default = default if default is not None else (lambda request: answer())
        self.scripts: dict[str, deque[Reply] | Reply] = {
            name.replace("__", "/"): deque(s) if isinstance(s, list) else s
            for name, s in scripts.items()
        }
        self.calls: list[str] = []
        self.requests: list[Request] = []

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.calls)

    async def __call__(self, request: Request) -> Result:
        name = request.options["deployment"].name
        self.calls.append(name)
        self.requests.append(request)
        script = self.scripts.get(name, self.default)
        reply = (
            (script.popleft() if script else self.default) if isinstance(script, deque) else script
        )
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(request)
            if inspect.isawaitable(reply):
                reply = await reply
        if isinstance(reply, ChatResponse):
            reply = ChatResponse(
                choices=reply.choices,
                usage=reply.usage,
                provider=request.provider,
                model=request.model,
            )
        return reply


def build(router: Router, model: str = "g", messages: Iterable[Any] = HI, **params: Any) -> Request:
    """The request a pipeline with ``router`` builds for ``model`` (claimed, not resolved)."""
    pipe = Pipeline([router], registry=ProviderRegistry())
    metadata = params.pop("metadata", None)
    return pipe.request("chat", model, messages=list(messages), params=params, metadata=metadata)


def held(gate: anyio.Event, text: str = "ok") -> Callable[[Request], Any]:
    """A reply that waits for ``gate`` (a call kept in flight), then answers ``text``."""

    async def respond(request: Request) -> Any:
        await gate.wait()
        return answer(text)

    return respond


def timed(clock: FakeClock, seconds: float, reply: Reply) -> Callable[[Request], Any]:
    """A reply that takes ``seconds`` on ``clock`` (no real waiting)."""

    def respond(request: Request) -> Any:
        clock.now += seconds
        if isinstance(reply, BaseException):
            raise reply
        return reply

    return respond
