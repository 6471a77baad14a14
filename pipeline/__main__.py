"""``python -m pipeline``: the demo. Chat, streamed chat and embeddings through a
pipeline to the built-in ``mock`` provider: no network, no key."""

from __future__ import annotations

import anyio

from pipeline import Pipeline

MESSAGES = [{"role": "user", "content": "What does dispatchline do?"}]


async def main() -> None:
    async with Pipeline.default() as pipe:
        print(repr(pipe), end="\n\n")

        # temperature=0 asks for a reproducible answer: the default cache keeps it.
        reply = await pipe.acompletion("mock/echo", MESSAGES, temperature=0)
        print("chat:      ", reply.choices[0].message.content)
        print(
            "           ",
            f"provider={reply.provider} model={reply.model}",
            f"tokens={reply.usage.total_tokens if reply.usage else None}",
            f"latency={reply.latency * 1e3:.2f} ms",
        )

        again = await pipe.acompletion("mock/echo", MESSAGES, temperature=0)
        print("again:      ", f"cache_hit={again.cache_hit}", end="\n\n")

        print("stream:     ", end="")
        async with await pipe.acompletion("mock/echo", MESSAGES, stream=True) as stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    print(choice.delta.content or "", end="", flush=True)
                if chunk.usage is not None:
                    print(f"   [usage: {chunk.usage.total_tokens} tokens]")

        vectors = await pipe.aembedding("mock/embed", ["hello", "world"], dimensions=4)
        for item in vectors.data:
            print(f"embedding {item.index}:", item.embedding)


if __name__ == "__main__":
    anyio.run(main)
