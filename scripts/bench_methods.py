"""Day 3's comparison table from the command line: every method at the same budget, one
child process per method (so each peak-memory figure starts from a clean process; `scripts._variants`).

    python -m scripts.bench_methods --profile ci                  # all nine methods
    python -m scripts.bench_methods --profile ci --methods lora full --steps 10
    python -m scripts.bench_methods --model-config qwen2.5-0.5b    # on a GPU
    # does each method's training fit a T4? the colab profile's sizes on the real model shape
    python -m scripts.make_qwen_folder build/qwen-0.5b-shape
    python -m scripts.bench_methods --profile colab --model build/qwen-0.5b-shape --memory-only

(from the repository root; installed: `loraweek-bench-methods`, `loraweek-make-qwen-folder`).

Each child runs `loraweek.methods.compare.sweep_method` (the method's learning-rate sweep,
best run kept on validation loss) and `compare.measure` (checkpoint, counted memory,
task metric, latency merged / unmerged), exactly what the notebook calls, and writes its
row as JSON; the parent prints the rows side by side.  Timings on a shared machine are
noisy: compare rows of the same run only.

`--memory-only` skips the sweep, the scoring and the latency: each child trains its method
for `--steps` (default 2, enough for Adam's states to exist during a backward pass) at the
profile's batch, sequence length and gradient checkpointing, and reports the peak memory of
that run (model included) against a T4's 15 GiB.  On a GPU that is the allocator's peak; on a
CPU it is the resident set size the run added, which counts the same tensors but not CUDA's
context (~0.3-0.5 GB) or allocator fragmentation.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from loraweek.hardware import T4_USABLE_GIB, T4_USABLE_MB
from loraweek.profiles import get_profile
from scripts._variants import run_variants

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
    if args.memory_only:
        return memory_child(args, profile)
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


MB = 2 ** 20


def memory_child(args, profile) -> None:
    """Train one method for a few steps at the profile's sizes; write what the run held at its peak."""
    import torch

    from loraweek.memory import PeakMemory
    from loraweek.methods import compare, registry

    import loraweek.training  # noqa: F401  (the Trainer's imports are not the method's memory)
    import peft  # noqa: F401

    profile = profile.replace(eval_examples=profile.batch_size)  # one evaluation batch: training decides the fit
    budget = compare.CompareBudget.from_profile(profile)
    data = compare.load_data(profile, budget)  # libraries and data loaded before the measured run
    steps = args.steps or 2
    lr = registry.learning_rates(args.child, profile, 1)[0]
    with PeakMemory() as mem:
        run = compare.train_method(args.child, profile, data, Path(args.work) / args.child, learning_rate=lr,
                                   steps=steps)
    model = run.model
    trainable = registry.trainable_parameters(args.child, model)
    on_gpu = torch.cuda.is_available()
    row = {"trainable": trainable,
           "weights_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / MB,
           "states_mb": trainable * 12 / MB,  # fp32 gradient + Adam's two moments per trained parameter
           "peak_mb": mem.peak_mb if on_gpu else mem.added_mb,  # CPU: RSS the run added, model included
           "memory_kind": mem.kind if on_gpu else "CPU RSS added",
           "s_per_step": run.report.train_s / max(run.report.steps, 1), "tokens_per_s": run.report.tokens_per_s,
           "batch": f"{profile.batch_size} x {profile.grad_accum} accumulation, max {profile.max_seq_len} tokens, "
                    f"checkpointing {'on' if profile.gradient_checkpointing else 'off'}",
           "dtype": str(registry.training_profile(args.child, profile).compute_dtype).replace("torch.", "")}
    Path(args.json_out).write_text(json.dumps(row))


def print_memory_table(rows: dict) -> None:
    print(f"| method | trainable | dtype | weights MB | grads + Adam MB | peak MB | fits a T4 ({T4_USABLE_GIB:g} GiB)? "
          "| s/step |")
    print("|---|---|---|---|---|---|---|---|")
    for m, r in rows.items():
        fits = "yes" if r["peak_mb"] <= T4_USABLE_MB else "no"
        print(f"| {m} | {r['trainable']:,} | {r['dtype']} | {r['weights_mb']:,.0f} | {r['states_mb']:,.0f} | "
              f"{r['peak_mb']:,.0f} | {fits} | {r['s_per_step']:.1f} |")
    first = next(iter(rows.values()))
    print(f"\npeak MB: {first['memory_kind']} during the run, model included; batch {first['batch']}")


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
    p.add_argument("--steps", type=int, default=None, help="steps per run (default: the profile's sweep_steps; 2 with --memory-only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-config", choices=["qwen2.5-0.5b"], default=None,
                   help="a randomly initialised model of this shape instead of the profile's model")
    p.add_argument("--full-vocab", action="store_true", help="with --model-config: keep the 151,936-token embedding")
    p.add_argument("--model", default=None, help="a model folder instead of the profile's model "
                                                 "(e.g. from scripts.make_qwen_folder: the real shape and tokenizer)")
    p.add_argument("--memory-only", action="store_true",
                   help="only train each method for --steps (default 2) at the profile's sizes and report its peak memory")
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    for m in args.methods:
        registry.get_method(m)  # an unknown name fails here, before any training
    if args.model and args.model_config:
        p.error("--model and --model-config both name the model: give one")
    if args.model and not (Path(args.model) / "config.json").is_file():
        p.error(f"--model {args.model}: no config.json there (build one with python -m scripts.make_qwen_folder)")

    from loraweek.notebook.env import print_environment

    profile = get_profile(args.profile)
    print_environment(profile.replace(model_id=args.model) if args.model else profile)
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model_dir = Path(args.model).resolve() if args.model else None
        if args.model_config:
            from scripts._shapes import build_shaped_model

            model_dir = build_shaped_model(profile, work / "model", args.full_vocab, args.seed)
        child_args = ["--seed", str(args.seed), "--work", str(work), "--profile", profile.name]
        child_args += (["--model-dir", str(model_dir)] if model_dir else []) + (["--steps", str(args.steps)] if args.steps else [])
        child_args += ["--memory-only"] if args.memory_only else []
        rows = run_variants("scripts.bench_methods", args.methods, work, child_args)
    print()
    if args.memory_only:
        return print_memory_table(rows)
    print_table(rows)
    kind = next(iter(rows.values()))["memory_kind"]
    print(f"\npeak MB: {kind} of the method's own process (its sweep included); counted MB: weights + fp32 "
          "gradients and Adam moments of the trainable parameters + activations saved for backward (one batch)")
    print("learning-rate sweeps (validation loss):")
    for m, r in rows.items():
        print(f"  {m:>10}: " + "  ".join(f"{lr} -> {loss:.3f}" for lr, loss in r["sweep"].items()))


if __name__ == "__main__":
    main()
