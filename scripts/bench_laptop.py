"""The `laptop` profile's sizes on SmolLM2-135M-Instruct, lever by lever, side by side: QLoRA (NF4
on a CPU) vs plain LoRA (fp32 base), the sequence-length cut, logits only where a label is
trained, batch x gradient accumulation and gradient checkpointing.

    python -m scripts.bench_laptop                       # the default variants, 2 steps each
    python -m scripts.bench_laptop --steps 10 --variants today,lora,laptop
    python -m scripts.bench_laptop --list                # what each variant changes

(from the repository root; installed: `loraweek-bench-laptop`).

Every variant trains with the course's own code, as Day 2 does (`loraweek.training.run_qlora`:
the course's chat masking, its padded collator, `training.train` on transformers' Trainer) at
the same learning rate (5e-4: the rate issue 24 measured SmolLM2 with), seed, effective batch
(8 examples per optimizer step) and validation examples, each in its own child process, one
after the other (`scripts._variants`), so each peak RSS starts from a clean process.  `today` is what the issue
measured: the `ci` sizes (batch 8, <= 320 tokens) with a 4-bit NF4 base and the model's own loss
over [batch, seq, 49,152] fp32 logits.

Printed per variant: the matmul GFLOP/s of the machine just before it (a 2048^2 fp32 matmul in
a fresh `python -c`: on a shared machine the figures move with the load, so compare rows of
one run), training's peak RSS (sampled by `loraweek.memory.PeakMemory` during `train`, the
child's whole process: model, data, optimizer and activations) and the child's lifetime maximum
RSS, non-padding tokens/s of training alone (evaluations excluded), and the validation loss
before and after.  The parent also prints the token lengths of the training examples in
SmolLM2's chat template, from which `max_seq_len` is chosen.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts._variants import run_variant

MODULE = "scripts.bench_laptop"
ROOT = Path(__file__).resolve().parents[1]  # the repository root (for the commit it prints)

LEARNING_RATE = 5e-4
CI_SIZES = dict(max_seq_len=320, batch_size=8, grad_accum=1, gradient_checkpointing=False)  # the ci profile's
# name -> (what it changes, quantization, profile sizes, logits only at labelled positions)
VARIANTS = {
    "today": ("ci sizes, QLoRA (NF4 base), full logits", "nf4", CI_SIZES, False),
    "lora": ("ci sizes, plain LoRA (fp32 base), full logits", None, CI_SIZES, False),
    "lora+ans": ("lora, logits only where a label is trained", None, CI_SIZES, True),
    "lora+ans+384": ("lora+ans, max_seq_len 384 (keeps 99.5% of the examples)", None,
                     dict(CI_SIZES, max_seq_len=384), True),
    "lora+ans+384+b2x4": ("lora+ans+384, batch 2 x accumulation 4", None,
                          dict(CI_SIZES, max_seq_len=384, batch_size=2, grad_accum=4), True),
    "lora+ans+384+b4x2": ("lora+ans+384, batch 4 x accumulation 2", None,
                          dict(CI_SIZES, max_seq_len=384, batch_size=4, grad_accum=2), True),
    "lora+ans+384+ckpt": ("lora+ans+384, batch 8, gradient checkpointing", None,
                          dict(CI_SIZES, max_seq_len=384, gradient_checkpointing=True), True),
    "qlora+ans+384+b2x4": ("QLoRA (NF4 base) at lora+ans+384+b2x4's sizes: what Day 2 runs", "nf4",
                           dict(CI_SIZES, max_seq_len=384, batch_size=2, grad_accum=4), True),
    "laptop": ("the laptop profile as shipped (its own method and sizes)", "profile", None, True),
}
DEFAULT_VARIANTS = [v for v in VARIANTS if v not in ("lora+ans+384+b4x2", "laptop")]
GFLOPS_SNIPPET = ("import time, torch; a = torch.randn(2048, 2048); b = torch.randn(2048, 2048); a @ b; "
                  "t = time.perf_counter(); [a @ b for _ in range(8)]; "
                  "print(8 * 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)")


def matmul_gflops() -> float:
    out = subprocess.run([sys.executable, "-c", GFLOPS_SNIPPET], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def smollm2_profile(variant: str):
    """The variant's profile: the laptop profile's model (SmolLM2) at the variant's sizes."""
    from loraweek.profiles import get_profile

    laptop = get_profile("laptop")
    _, quantization, sizes, _ = VARIANTS[variant]
    if sizes is None:
        return laptop, laptop.quantization
    return laptop.replace(learning_rate=LEARNING_RATE, **sizes), quantization


def load_smollm2_tokenizer(profile, course_loader=None):
    """The course's tokenizer loader; until it fixes a pad token equal to the end-of-turn token
    (issue 24, item 1), SmolLM2's is fixed here by hand as that fix will: `<|endoftext|>`, id 0."""
    from loraweek import models

    try:
        return (course_loader or models.load_tokenizer)(profile)
    except ValueError as err:
        if "equals the end-of-turn token" not in str(err):
            raise
    from transformers import AutoTokenizer

    from loraweek.data.chat import find_end_of_turn

    tok = AutoTokenizer.from_pretrained(models.resolve_model_path(profile.model_id))
    tok.eos_token = find_end_of_turn(tok)
    tok.pad_token = "<|endoftext|>"
    return tok


def child(args) -> None:
    """Train one variant with Day 2's pipeline and write its report as JSON."""
    import resource
    import time
    from dataclasses import asdict

    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from loraweek import models, training

    hf_logging.disable_progress_bar()
    profile, quantization = smollm2_profile(args.child)
    profile = profile.replace(eval_examples=args.eval_examples, eval_every=args.steps)  # before and after only
    course_loader = models.load_tokenizer  # what run_qlora calls, with SmolLM2's pad fix (see load_smollm2_tokenizer)
    models.load_tokenizer = lambda p: load_smollm2_tokenizer(p, course_loader)
    training.LOGITS_AT_LABELS_ONLY = VARIANTS[args.child][3]
    # CPU time of training alone (the process's, all threads; evaluations subtracted): on a machine
    # shared with other jobs, wall time grows with their load, CPU time much less
    eval_cpu = [0.0]
    evaluate = transformers.Trainer.evaluate

    def timed_evaluate(self, *a, **kw):
        t = time.process_time()
        try:
            return evaluate(self, *a, **kw)
        finally:
            eval_cpu[0] += time.process_time() - t

    transformers.Trainer.evaluate = timed_evaluate
    train = training.train

    def timed_train(*a, **kw):
        t = time.process_time()
        out = train(*a, **kw)
        cpu[0] = time.process_time() - t
        return out

    cpu = [0.0]
    training.train = timed_train
    result = training.run_qlora(profile, Path(args.work) / args.child, max_steps=args.steps, resume=False,
                                progress=False, save_every=10 ** 9, quantization=quantization, seed=args.seed)
    report = asdict(result.report)
    train_cpu = cpu[0] - eval_cpu[0]
    report.update(train_cpu_s=train_cpu, threads=torch.get_num_threads(),
                  cpu_tokens_per_s=report["tokens"] / (train_cpu / torch.get_num_threads()),
                  maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  quantization=quantization or "none", max_seq_len=profile.max_seq_len,
                  batch_size=profile.batch_size, grad_accum=profile.grad_accum,
                  checkpointing=profile.gradient_checkpointing, answer_logits=training.LOGITS_AT_LABELS_ONLY,
                  train_examples=profile.train_examples)
    Path(args.json_out).write_text(json.dumps(report))


def length_table(profile) -> str:
    """Token lengths of the training examples in the model's chat template, and what each
    max_seq_len keeps."""
    from loraweek.data import chat, schema

    tok = load_smollm2_tokenizer(profile)
    feats, _ = chat.tokenize_examples(tok, schema.load_split("train"), 10 ** 6)
    lengths = sorted(len(f["input_ids"]) for f in feats)
    answers = sorted(sum(t != -100 for t in f["labels"]) for f in feats)
    system_turn = tok.apply_chat_template([{"role": "system", "content": chat.SYSTEM_PROMPT}], tokenize=False)
    system = len(tok(system_turn, add_special_tokens=False)["input_ids"])
    pct = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]  # noqa: E731
    keeps = ", ".join(f"<= {n}: {sum(x <= n for x in lengths) / len(lengths):.1%}" for n in (256, 288, 320, 352, 384))
    return (f"training examples in SmolLM2's chat template ({len(lengths)}): tokens median {pct(0.5)}, "
            f"p90 {pct(0.9)}, p95 {pct(0.95)}, p99 {pct(0.99)}, max {lengths[-1]}; the system turn alone "
            f"{system} tokens; trained labels (answer + end of turn) median {answers[len(answers) // 2]}\n"
            f"kept by max_seq_len {keeps}")


def machine() -> str:
    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return (f"{cpu}, {os.cpu_count()} cores ({isa}), {torch.get_num_threads()} torch threads, "
            f"{psutil.virtual_memory().total / 2 ** 30:.0f} GiB RAM")


def commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "shared/loraweek",
                                "scripts"], capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes in shared/loraweek or scripts/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(reports: dict) -> str:
    base = reports.get("today", {}).get("tokens_per_s")
    base_cpu = reports.get("today", {}).get("cpu_tokens_per_s")
    header = ["variant", "method", "seq <=", "batch x accum", "ckpt", "logits", "kept", "steps", "train s",
              "tok/s", "vs today", "tok/CPU-s x2", "vs today", "train peak RSS MB", "max RSS MB",
              "val loss before -> after", "GFLOP/s"]
    rows = []
    for name, r in reports.items():
        rows.append([name, "QLoRA" if r["quantization"] == "nf4" else "LoRA", str(r["max_seq_len"]),
                     f"{r['batch_size']} x {r['grad_accum']}", "yes" if r["checkpointing"] else "no",
                     "labels" if r["answer_logits"] else "all", f"{r['kept']:.0%}", str(r["steps"]),
                     f"{r['train_s']:.0f}", f"{r['tokens_per_s']:.1f}",
                     f"{r['tokens_per_s'] / base:.2f}x" if base else "-", f"{r['cpu_tokens_per_s']:.1f}",
                     f"{r['cpu_tokens_per_s'] / base_cpu:.2f}x" if base_cpu else "-", f"{r['peak_memory_mb']:,.0f}",
                     f"{r['maxrss_mb']:,.0f}", f"{r['eval_loss_before']:.3f} -> {r['eval_loss_after']:.3f}",
                     f"{r['gflops']:.0f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per variant (default 2)")
    p.add_argument("--eval-examples", type=int, default=8, help="validation examples for the loss (default 8)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, in this order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.list:
        for name, (what, *_) in VARIANTS.items():
            print(f"{name:>20}: {what}")
        return
    if args.child:
        return child(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; --list shows them")

    from loraweek.notebook.env import print_environment

    laptop, _ = smollm2_profile("laptop")
    print("command: " + shlex.join([Path(sys.executable).name, "-m", MODULE] + (argv or sys.argv[1:])))
    print(f"commit: {commit()}\nmachine: {machine()}")
    print_environment(laptop)
    print(length_table(laptop))
    print(f"\n{args.steps} optimizer steps of 8 examples per variant, lr {LEARNING_RATE:g} (the laptop variant: "
          f"its own), validation loss on {args.eval_examples} messages, seed {args.seed}\n", flush=True)
    reports = {}
    with tempfile.TemporaryDirectory(prefix="bench-laptop-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for variant in variants:
            gflops = matmul_gflops()
            print(f"--- {variant}: {VARIANTS[variant][0]} (matmul {gflops:.0f} GFLOP/s)", flush=True)
            report = run_variant(MODULE, variant, work, ["--steps", str(args.steps), "--seed", str(args.seed),
                                                         "--eval-examples", str(args.eval_examples), "--work", str(work)])
            report.update(gflops=gflops, kept=1 - report["dropped_too_long"] / (report["train_examples"] +
                                                                                  args.eval_examples))
            reports[variant] = report
            print(f"    {report['tokens_per_s']:.1f} tok/s ({report['cpu_tokens_per_s']:.1f} per CPU-s x "
                  f"{report['threads']}), train peak RSS {report['peak_memory_mb']:,.0f} MB, "
                  f"val loss {report['eval_loss_before']:.3f} -> {report['eval_loss_after']:.3f}", flush=True)
    print(f"\nafter the last variant: matmul {matmul_gflops():.0f} GFLOP/s\n")
    print(table(reports))
    print("\ntok/s: non-padding tokens per second of training (evaluations excluded), wall clock; tok/CPU-s x2: "
          "the same tokens per second of the process's CPU time (all threads, evaluations excluded) times its "
          "threads, i.e. the wall rate if its threads never waited for other jobs; train peak RSS: the child's "
          "resident set during `train` (evaluations included); max RSS: the child's lifetime maximum; kept: the "
          "share of train + validation examples within max_seq_len (run_qlora drops and counts longer ones)")


if __name__ == "__main__":
    main()
