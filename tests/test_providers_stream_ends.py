"""A stream that ends before its provider's end marker is an error, never a reply (issue 8, item 2).

Every recorded stream, cut at every line boundary before its end marker,
must raise ProviderResponseError from the decoder's close(); whole, it must
decode. The markers: OpenAI-style ``data: [DONE]`` (with a finish reason for
every choice that started), Anthropic's ``message_stop``, Gemini's
``finishReason``, Ollama's ``done: true``, Cohere's ``message-end``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pipeline import Request, errors
from pipeline.adapter import Adapter
from providers.anthropic import ANTHROPIC
from providers.azure import AZURE
from providers.cohere import COHERE
from providers.compatible import COMPATIBLE
from providers.gemini import GEMINI
from providers.ollama import OLLAMA
from providers.openai import OPENAI
from tests._decoding import END_MARKERS, feed
from tests.conftest import RECORDED, load_recorded

pytestmark = pytest.mark.anyio

ROWS = {row.name: row for row in COMPATIBLE}
# recording folder -> (adapter, end-marker family)
FOLDERS: dict[str, tuple[Adapter, str]] = {
    "openai": (OPENAI, "openai"),
    "azure_openai": (AZURE, "openai"),
    "groq": (ROWS["groq"], "openai"),
    "mistral": (ROWS["mistral"], "openai"),
    "anthropic": (ANTHROPIC, "anthropic"),
    "gemini": (GEMINI, "gemini"),
    "ollama": (OLLAMA, "ollama"),
}


def recorded_streams() -> list[str]:
    names = []
    for folder in FOLDERS:
        for path in sorted((RECORDED / folder).glob("*.json")) if RECORDED.exists() else ():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["endpoint"] == "chat_stream" and data["response"]["status"] == 200:
                names.append(f"{folder}/{path.name}")
    return names


STREAMS = recorded_streams()


def stream_request(adapter: Adapter) -> Request:
    return Request(endpoint="chat", provider=adapter.name, model="m", messages=[], stream=True)


def raw_of(name: str) -> bytes:
    body: Any = load_recorded(name)["response"]["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def test_every_provider_with_recorded_streams_is_covered() -> None:
    if not STREAMS:
        load_recorded("openai/chat_basic.json")  # skips, or fails in CI
    assert {name.split("/")[0] for name in STREAMS} == set(FOLDERS)


@pytest.mark.parametrize("name", STREAMS)
def test_a_whole_recorded_stream_decodes(name: str) -> None:
    adapter, _ = FOLDERS[name.split("/")[0]]
    chunks = feed(adapter.stream_decoder(stream_request(adapter)), raw_of(name))
    assert chunks


@pytest.mark.parametrize("name", STREAMS)
def test_a_recorded_stream_cut_before_its_end_marker_raises(name: str) -> None:
    adapter, family = FOLDERS[name.split("/")[0]]
    raw = raw_of(name)
    end = [m.start() for m in re.finditer(END_MARKERS[family], raw)][-1]
    cuts = [i + 1 for i in range(end) if raw[i : i + 1] in (b"\n", b",")] + [0]
    assert len(cuts) > 1
    for cut in cuts:
        decoder = adapter.stream_decoder(stream_request(adapter))
        with pytest.raises(errors.ProviderResponseError):
            feed(decoder, raw[:cut])


# -- the cases no recording has ----------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def openai_chunk(index: int, content: str | None, finish: str | None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


def test_openai_done_without_a_finish_reason_for_every_choice_is_cut() -> None:
    raw = sse(openai_chunk(0, "a", "stop"), openai_chunk(1, "b", None)) + b"data: [DONE]\n\n"
    with pytest.raises(errors.ProviderResponseError, match="choice 1"):
        feed(OPENAI.stream_decoder(stream_request(OPENAI)), raw)
    whole = sse(openai_chunk(0, "a", "stop"), openai_chunk(1, "b", "stop")) + b"data: [DONE]\n\n"
    assert len(feed(OPENAI.stream_decoder(stream_request(OPENAI)), whole)) == 2


def test_openai_finish_reasons_without_done_are_cut() -> None:
    raw = sse(openai_chunk(0, "a", None), openai_chunk(0, None, "stop"))
    with pytest.raises(errors.ProviderResponseError, match=r"\[DONE\]"):
        feed(OPENAI.stream_decoder(stream_request(OPENAI)), raw)


def test_an_empty_stream_is_cut_for_every_provider() -> None:
    for adapter in (OPENAI, ANTHROPIC, GEMINI, OLLAMA, COHERE):
        with pytest.raises(errors.ProviderResponseError, match="ended before"):
            feed(adapter.stream_decoder(stream_request(adapter)), b"")


def test_a_cohere_stream_cut_before_message_end_raises() -> None:
    raw = (
        b'event: message-start\ndata: {"type":"message-start","id":"m",'
        b'"delta":{"message":{"role":"assistant"}}}\n\n'
        b'event: content-delta\ndata: {"type":"content-delta","index":0,'
        b'"delta":{"message":{"content":{"text":"Hi"}}}}\n\n'
    )
    with pytest.raises(errors.ProviderResponseError, match="message-end"):
        feed(COHERE.stream_decoder(stream_request(COHERE)), raw)
    end = (
        b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE"}}\n\n'
    )
    assert len(feed(COHERE.stream_decoder(stream_request(COHERE)), raw + end)) == 3


def test_a_gemini_stream_whose_candidate_never_finishes_is_cut() -> None:
    event = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}
    raw = b"data: " + json.dumps(event).encode() + b"\r\n\r\n"
    with pytest.raises(errors.ProviderResponseError, match="finishReason"):
        feed(GEMINI.stream_decoder(stream_request(GEMINI)), raw)
