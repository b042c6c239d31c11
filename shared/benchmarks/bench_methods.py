"""Day 3's comparison table from the command line: every method at the same budget, one
child process per method (so each peak-memory figure starts from a clean process).

    python shared/benchmarks/bench_methods.py --profile ci                  # all nine methods
    python shared/benchmarks/bench_methods.py --profile ci --methods lora full --steps 10
    python shared/benchmarks/bench_methods.py --model-config qwen2.5-0.5b    # on a GPU

Each child runs `loraweek.methods.compare.sweep_method` (the method's learning-rate sweep,
best run kept on validation loss) and `compare.measure` (checkpoint, counted memory,
task metric, latency merged / unmerged), exactly what the notebook calls, and writes its
row as JSON; the parent prints the rows side by side.  Timings on a shared machine are
noisy: compare rows of the same run only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # shared/ (a no-op where loraweek is installed)
sys.path.insert(0, str(HERE.parent))      # bench_batching's shaped-model builder

from loraweek.profiles import get_profile  # noqa: E402

COLUMNS = [("learning_rate", "lr", "{:.1e}"), ("trainable", "trainable", "{:,}"), ("trainable_pct", "%", "{:.3f}"),
           ("checkpoint_mb", "ckpt MB", "{:.3f}"), ("peak_mb", "peak MB", "{:,.0f}"),
           ("memory_mb", "counted MB", "{:,.1f}"), ("s_per_step", "s/step", "{:.3f}"),
           ("tokens_per_s", "tok/s", "{:,.0f}"), ("val_loss", "val loss", "{:.3f}"),
           ("json_valid", "JSON ok", "{:.2f}"), ("intent_f1", "intent F1", "{:.3f}"),
           ("ms_per_token", "ms/tok", "{:.2f}"), ("ms_per_token_merged", "ms/tok merged", "{:.2f}")]


def child(args) -> None:
    from transformers.utils import logging as hf_logging

    from loraweek.methods import compare

    hf_logging.disable_progress_bar()  # one line per method in the parent's log, not a bar per model load

    profile = get_profile(args.profile)
    if args.model_dir:
        profile = profile.replace(model_id=args.model_dir)
    budget = compare.CompareBudget.from_profile(profile)
    if args.steps:
        budget = compare.CompareBudget(args.steps, budget.score_examples, budget.latency_tokens, budget.latency_repeats,
                                       budget.sweep_points)
    data = compare.load_data(profile, budget)
    out = Path(args.work) / args.child
    best, sweep = compare.sweep_method(args.child, profile, data, out, budget.steps, args.seed,
                                       points=budget.sweep_points)
    result = compare.measure(args.child, best, profile, data, budget, sweep, out / "best",
                             compare.base_parameter_count(profile))
    row = result.row()
    row["sweep"] = {f"{lr:.1e}": loss for lr, loss in sweep.items()}
    row["memory_kind"] = result.memory_kind
    Path(args.json_out).write_text(json.dumps(row))


def print_table(rows: dict) -> None:
    header = ["method"] + [title for _, title, _ in COLUMNS]
    cells = [[m] + ["-" if r[k] is None else fmt.format(r[k]) for k, _, fmt in COLUMNS] for m, r in rows.items()]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda cs: "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print(line(c))


def main(argv=None) -> None:
    from loraweek.methods import registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None, help="ci / colab / gpu (default: from the hardware)")
    p.add_argument("--methods", nargs="+", default=list(registry.METHODS), help="default: all nine")
    p.add_argument("--steps", type=int, default=None, help="steps per run (default: the profile's sweep_steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-config", choices=["qwen2.5-0.5b"], default=None,
                   help="a randomly initialised model of this shape instead of the profile's model")
    p.add_argument("--full-vocab", action="store_true", help="with --model-config: keep the 151,936-token embedding")
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    for m in args.methods:
        registry.get_method(m)  # an unknown name fails here, before any training

    from loraweek.env import print_environment

    profile = get_profile(args.profile)
    print_environment(profile)
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model_dir = None
        if args.model_config:
            from bench_batching import build_shaped_model

            model_dir = build_shaped_model(profile, work / "model", args.full_vocab, args.seed)
        rows = {}
        for method in args.methods:
            out = work / f"{method}.json"
            cmd = [sys.executable, str(HERE), "--child", method, "--seed", str(args.seed), "--work", str(work),
                   "--json-out", str(out), "--profile", profile.name]
            cmd += (["--model-dir", str(model_dir)] if model_dir else []) + (["--steps", str(args.steps)] if args.steps else [])
            print(f"--- {method}", flush=True)
            subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
            rows[method] = json.loads(out.read_text())
    print()
    print_table(rows)
    kind = next(iter(rows.values()))["memory_kind"]
    print(f"\npeak MB: {kind} of the method's own process (its sweep included); counted MB: weights + fp32 "
          "gradients and Adam moments of the trainable parameters + activations saved for backward (one batch)")
    print("learning-rate sweeps (validation loss):")
    for m, r in rows.items():
        print(f"  {m:>10}: " + "  ".join(f"{lr} -> {loss:.3f}" for lr, loss in r["sweep"].items()))


if __name__ == "__main__":
    main()
