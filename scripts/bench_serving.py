"""Serving throughput and latency: 1, 4 and 8 concurrent clients against one real server.

    HF_HUB_OFFLINE=1 .venv/bin/python -m scripts.bench_serving            # course adapter, ci
    .venv/bin/python -m scripts.bench_serving --adapter runs/day2/adapter --requests 32
    .venv/bin/python -m scripts.bench_serving --server-args "--merge"     # merged fp model
    .venv/bin/python -m scripts.bench_serving --server-args "--quantization nf4"

Starts `python -m loraweek.serving` on loopback, sends the same held-out messages (greedy, the
same max_tokens) with 1, 4 and 8 closed-loop clients, and prints requests/s, generated
tokens/s, p50/p95 latency and the speed-up over one client side by side.  The server
batches what is waiting, so the speed-up comes from one forward pass serving many rows.
Timings on a shared machine are noisy: compare rows from the same run only.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from loraweek.data.schema import load_split
from loraweek.serving.loadtest import compare, run_load
from loraweek.serving.process import ServerProcess


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", help="adapter folder (default: the course's fine-tuned adapter)")
    p.add_argument("--profile", default="ci")
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--server-args", default="", help="extra arguments for python -m loraweek.serving")
    a = p.parse_args(argv)
    adapter = a.adapter
    if adapter is None:
        from loraweek.models.finetuned import course_adapter
        from loraweek.profiles import get_profile
        adapter = course_adapter(get_profile(a.profile), progress=False)
    messages = [ex.message for ex in load_split("test")[: a.requests]]
    args = ["--adapter", str(adapter), "--profile", a.profile, "--rate-limit", "1000000",
            "--max-batch", "8", *shlex.split(a.server_args)]
    reports = []
    with ServerProcess(args) as server:
        run_load(server.base_url, server.api_key, "helpdesk-router", messages[:2], clients=1, max_tokens=8)  # warm-up
        for n in (int(c) for c in a.clients.split(",")):
            reports.append(run_load(server.base_url, server.api_key, "helpdesk-router", messages, clients=n,
                                    max_tokens=a.max_tokens))
            print(f"{n} client(s): {json.dumps(reports[-1].summary())}", flush=True)
    print(f"\n{len(messages)} requests, max_tokens={a.max_tokens}, server args: {' '.join(args[4:])}")
    print(compare(reports))
    return 0 if all(r.errors == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
