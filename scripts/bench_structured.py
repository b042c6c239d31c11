"""Structured output: valid-JSON rate and tokens/s with and without constrained decoding.

    HF_HUB_OFFLINE=1 .venv/bin/python -m scripts.bench_structured                 # 200 test + 50 short
    HF_HUB_OFFLINE=1 .venv/bin/python -m scripts.bench_structured --n-test 40 --n-ood 20

Starts `python -m loraweek.serving` on loopback and sends, through the official `openai` client
and `--clients` at a time (the server batches them), the held-out test messages and the short
out-of-distribution ones (`loraweek.serving.loadtest.SHORT_MESSAGES`: "Tôi muốn hoàn tiền 3",
"hi", "???", ...) three ways: free text (what the model writes unconstrained), `json_object`
(the server's routing schema) and `json_schema` (the same schema sent by the client).  It prints,
side by side, how many answers are valid JSON and valid routing JSON, the intent accuracy on the
test messages, how many were cut by max_tokens, generated tokens/s and the median latency.
Timings on a shared machine are noisy: compare rows from the same run only.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from loraweek.data.schema import load_splits
from loraweek.data.answer import parse_answer
from loraweek.serving.loadtest import SHORT_MESSAGES
from loraweek.serving.monitoring import percentile
from loraweek.serving.process import ServerProcess
from loraweek.serving.structured import ROUTING_SCHEMA

MODES = {
    "free text": None,
    "json_object": {"type": "json_object"},
    "json_schema": {"type": "json_schema",
                    "json_schema": {"name": "routing", "schema": ROUTING_SCHEMA, "strict": True}},
}


def is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False


def run(client, model: str, messages: list[str], fmt, clients: int, max_tokens: int) -> tuple[list[dict], float]:
    """Each message once, `clients` at a time: [{text, tokens, finish, seconds, error}], wall seconds."""
    def one(message: str) -> dict:
        extra = {"response_format": fmt} if fmt else {}
        t0 = time.perf_counter()
        try:
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": message}],
                                               temperature=0, max_tokens=max_tokens, **extra)
        except Exception as exc:  # the old server's 502 for invalid JSON lands here
            return {"text": "", "tokens": 0, "finish": None, "seconds": time.perf_counter() - t0, "error": repr(exc)}
        return {"text": r.choices[0].message.content, "tokens": r.usage.completion_tokens,
                "finish": r.choices[0].finish_reason, "seconds": time.perf_counter() - t0, "error": ""}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        out = list(pool.map(one, messages))
    return out, time.perf_counter() - t0


def row(mode: str, name: str, results: list[dict], wall: float, intents: list[str] | None) -> str:
    n = len(results)
    parsed = [parse_answer(r["text"]) for r in results]
    right = None if intents is None else sum(p is not None and p["intent"] == t for p, t in zip(parsed, intents))
    acc = "-" if right is None else f"{right / n:.0%}"
    tokens = sum(r["tokens"] for r in results)
    return (f"| {mode} | {name} | {n} | {sum(bool(r['error']) for r in results)} "
            f"| {sum(is_json(r['text']) for r in results) / n:.0%} | {sum(p is not None for p in parsed) / n:.0%} "
            f"| {acc} | {sum(r['finish'] == 'length' for r in results)} | {tokens / wall:,.1f} "
            f"| {percentile([r['seconds'] for r in results], 50):.2f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", help="adapter folder (default: the course's fine-tuned adapter)")
    p.add_argument("--profile", default="ci")
    p.add_argument("--n-test", type=int, default=200, help="held-out test messages (at most 400)")
    p.add_argument("--n-ood", type=int, default=50,
                   help=f"short out-of-distribution messages (at most {len(SHORT_MESSAGES)})")
    p.add_argument("--max-tokens", type=int, default=128, help="the server's default max_tokens")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--server-args", default="", help="extra arguments for python -m loraweek.serving")
    a = p.parse_args(argv)
    if not 0 <= a.n_ood <= len(SHORT_MESSAGES):
        p.error(f"--n-ood must be between 0 and {len(SHORT_MESSAGES)}")
    adapter = a.adapter
    if adapter is None:
        from loraweek.models.finetuned import course_adapter
        from loraweek.profiles import get_profile

        adapter = course_adapter(get_profile(a.profile), progress=False)
    test = load_splits()["test"][: a.n_test]
    sets = {"test": ([ex.message for ex in test], [ex.intent for ex in test]),
            "short OOD": (SHORT_MESSAGES[: a.n_ood], None)}
    args = ["--adapter", str(adapter), "--profile", a.profile, "--rate-limit", "1000000",
            "--max-batch", str(a.clients), *shlex.split(a.server_args)]
    lines = ["| decoding | messages | n | errors | valid JSON | valid routing JSON | intent acc | cut by max_tokens "
             "| tokens/s | p50 s |", "|---|---|---|---|---|---|---|---|---|---|"]
    with ServerProcess(args) as server:
        client = server.openai_client(max_retries=0, timeout=600)
        run(client, "helpdesk-router", SHORT_MESSAGES[:4], MODES["json_object"], a.clients, 16)   # warm-up
        for mode, fmt in MODES.items():
            for name, (messages, intents) in sets.items():
                if messages:
                    results, wall = run(client, "helpdesk-router", messages, fmt, a.clients, a.max_tokens)
                    lines.append(row(mode, name, results, wall, intents))
                    print(lines[-1], file=sys.stderr, flush=True)
    print(f"{a.profile} profile, {a.clients} concurrent clients, greedy, max_tokens={a.max_tokens}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
