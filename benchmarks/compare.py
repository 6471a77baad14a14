"""The same chat call through ``litellm.acompletion``, when litellm is installed.

Optional (the ``[compare]`` extra): never installed by the benchmark
extras, never needed by the tests. Absent, :func:`variants` is empty and the run says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from benchmarks.overhead import Call, Variant, messages
from benchmarks.targets import API_KEY, MODEL_NAME, Target

LITELLM = "litellm.acompletion"


def available() -> bool:
    return importlib.util.find_spec("litellm") is not None


@asynccontextmanager
async def litellm_calls(target: Target) -> AsyncIterator[Call]:
    # litellm fetches a model price list from the internet when imported unless
    # told to use its bundled copy; the benchmark talks to 127.0.0.1 only.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = importlib.import_module("litellm")

    async def call(i: int) -> object:
        return await litellm.acompletion(
            model=f"openai/{MODEL_NAME}",
            messages=messages(i),
            api_base=target.base_url,
            api_key=API_KEY,
            temperature=0,
        )

    yield call


def variants() -> dict[str, Variant]:
    return {LITELLM: litellm_calls} if available() else {}
