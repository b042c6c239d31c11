"""Padded vs bucketed vs padding-free batches: the same model, data, steps and seed, three ways.

    python -m scripts.bench_batching                      # the profile's own model
    python -m scripts.bench_batching --profile ci --steps 30
    python -m scripts.bench_batching --model-config qwen2.5-0.5b   # on a GPU

(from the repository root; installed: `loraweek-bench-batching`).  Each variant trains in its
own child process (one after the other, `scripts._variants`), so each gets a clean
peak-memory counter: on CPU the peak is the process's resident set size, which never goes
back down within a process.  The padding fraction is computed here, in the parent, by
drawing the training order with the same sampler classes the Trainer uses (RandomSampler
for `padded`, transformers' LengthGroupedSampler for `bucketed`) from a seeded generator
(the same kind of order, not the Trainer's exact draw) and collating the first
steps x batch x grad-accum examples with the course's collators: padding fraction =
1 - real tokens / tensor cells.  Padding-free batches have no padding by construction.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from loraweek.hardware import T4_USABLE_GIB, T4_USABLE_MB
from loraweek.profiles import get_profile
from scripts._shapes import build_shaped_model
from scripts._variants import run_variants

VARIANTS = ("padded", "bucketed", "padding_free")


def padding_fractions(profile, steps: int, seed: int) -> dict[str, float]:
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from loraweek.data import chat, schema
    from loraweek.models import load_tokenizer
    from loraweek.training import FeatureDataset, make_collator

    tok = load_tokenizer(profile)
    feats, _ = chat.tokenize_examples(tok, schema.load_split("train")[: profile.train_examples], profile.max_seq_len)
    dataset = FeatureDataset(feats)
    batch, drawn = profile.batch_size, steps * profile.batch_size * profile.grad_accum
    gen = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    orders = {
        "padded": list(RandomSampler(dataset, generator=gen())),
        "bucketed": list(LengthGroupedSampler(batch * profile.grad_accum, dataset=dataset, generator=gen())),
        "padding_free": list(RandomSampler(dataset, generator=gen())),
    }
    result = {}
    for variant, order in orders.items():
        order = (order * (drawn // len(order) + 1))[:drawn]  # more than one epoch: wrap around
        collate = make_collator(tok, variant)
        real = cells = 0
        for i in range(0, drawn, batch):
            b = collate([dict(feats[j]) for j in order[i:i + batch]])
            real += sum(len(feats[j]["input_ids"]) for j in order[i:i + batch])
            cells += b["input_ids"].numel()
        result[variant] = 1 - real / cells
    return result


def child(args) -> None:
    """Train one variant and write its report as JSON."""
    from dataclasses import asdict

    from loraweek.training import run_qlora

    profile = get_profile(args.profile)
    if args.model_dir:
        profile = profile.replace(model_id=args.model_dir)
    profile = profile.replace(eval_every=args.steps)  # evaluate before and after only
    result = run_qlora(profile, Path(args.work) / args.child, max_steps=args.steps, batching=args.child,
                       resume=False, progress=False, save_every=10 ** 9, seed=args.seed)
    Path(args.json_out).write_text(json.dumps(asdict(result.report)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None, help="ci / colab / gpu (default: from the hardware)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-config", choices=["qwen2.5-0.5b"], default=None,
                   help="train a randomly initialised model of this shape instead of the profile's model")
    p.add_argument("--full-vocab", action="store_true", help="with --model-config: keep the 151,936-token embedding")
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    from loraweek.notebook.env import print_environment

    profile = get_profile(args.profile)
    print_environment(profile)
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model_dir = None
        if args.model_config:
            model_dir = build_shaped_model(profile, work / "model", args.full_vocab, args.seed)
            profile = profile.replace(model_id=str(model_dir))
        print(f"\n{args.steps} steps x batch {profile.batch_size} x grad-accum {profile.grad_accum}, "
              f"max_seq_len {profile.max_seq_len}, seed {args.seed}, model {profile.model_id}\n")
        padding = padding_fractions(profile, args.steps, args.seed)
        child_args = ["--steps", str(args.steps), "--seed", str(args.seed), "--work", str(work),
                      "--profile", profile.name] + (["--model-dir", str(model_dir)] if model_dir else [])
        reports = run_variants("scripts.bench_batching", VARIANTS, work, child_args)

    base = reports["padded"]["tokens_per_s"]
    header = ["batching", "steps", "train s", "non-padding tok/s", "speed-up vs padded",
              "padding fraction", "peak memory MB", "eval loss after"]
    rows = [[v, str(r["steps"]), f"{r['train_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
             f"{r['tokens_per_s'] / base:.2f}x", f"{padding[v]:.1%}", f"{r['peak_memory_mb']:,.0f}",
             f"{r['eval_loss_after']:.3f}"] for v, r in reports.items()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print()
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    kind = reports["padded"]["memory_kind"]
    print(f"\npeak memory: {kind}; eval loss before training: {reports['padded']['eval_loss_before']:.3f}; "
          "padding fraction: the samplers' kind of order collated in batches (see the docstring)")
    if args.model_config and torch.cuda.is_available():
        peak = max(r["peak_memory_mb"] for r in reports.values())
        print(f"peak VRAM {peak:,.0f} MB = {peak / T4_USABLE_MB:.0%} of a T4's {T4_USABLE_GIB:g} GiB: "
              f"{'fits' if peak < T4_USABLE_MB else 'does NOT fit'} (allocator peak; add ~0.5-1 GB CUDA context)")


if __name__ == "__main__":
    main()
