"""In-process decode timing for the Day 5 comparisons (merged vs unmerged, KV cache, 4-bit).

Every variant decodes the same prompts with the same engine code as the server, with the
length fixed (`min_tokens` = `max_tokens`: no early end-of-turn), one request at a time, so
the numbers differ only by the model variant and the cache.  Timings on a shared machine
are noisy: compare variants measured in the same run.
"""
from __future__ import annotations

import time

from loraweek.serving.backend import ServedModel, prompt_ids
from loraweek.serving.engine import BatchingEngine, GenRequest


def chat_prompt(served: ServedModel, message: str) -> list[int]:
    from loraweek.data.chat import SYSTEM_PROMPT, scrub_message

    return prompt_ids(served, [{"role": "system", "content": SYSTEM_PROMPT},
                               {"role": "user", "content": scrub_message(message)}])


def decode_speed(served: ServedModel, messages: list[str], max_tokens: int, use_cache: bool = True,
                 name: str | None = None) -> dict:
    """Seconds per request and generated tokens/s, requests decoded one after another."""
    engine = BatchingEngine(served, max_batch=1, use_cache=use_cache)
    name = name or served.default_name
    latencies, tokens = [], 0
    with served.use(name):
        for message in messages:
            got = []
            req = GenRequest(name, chat_prompt(served, message), max_tokens, emit=got.append, min_tokens=max_tokens)
            t0 = time.perf_counter()
            engine._generate([req])
            latencies.append(time.perf_counter() - t0)
            tokens += got[-1].completion_tokens
    total = sum(latencies)
    return {"requests": len(messages), "seconds_per_request": round(total / len(messages), 4),
            "tokens_per_s": round(tokens / total, 2)}
