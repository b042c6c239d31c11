"""Does the `ci` model learn the task?  Build time, Day 2 training time, and base vs fine-tuned vs
majority-class scores on held-out validation and test messages, side by side.

    python -m scripts.bench_ci_model                 # cached ci model, the ci profile's recipe
    python -m scripts.bench_ci_model --fresh         # also time the ci model build (temp cache)
    python -m scripts.bench_ci_model --steps 150 --lr 3e-3 --n 400
    python -m scripts.bench_ci_model --profile laptop      # SmolLM2-135M-Instruct, real model

Training is exactly Day 2's (`loraweek.training.run_qlora` with the profile's method: NF4 base + LoRA,
or plain LoRA in the laptop profile).  With the profile's own recipe (no --steps/--lr/--rank) the
adapter is the course adapter (`loraweek.models.finetuned.course_adapter`: trained once, cached, the one
Days 3-5 load), so a second run only scores.  The base's answers come from the same model with the
adapter switched off.  Intent macro-F1 is sklearn's `f1_score(average="macro")` over the 10 intents
(an invalid answer is a miss).  After the table: every score with Day 4's 95% bootstrap interval
(`loraweek.metrics.report`), and the general multiple-choice set (Day 4's log-likelihood scoring)
before and after fine-tuning: what the adapter did to general knowledge.  Times are wall clock and
process CPU time (all threads): on a shared machine the wall time is pessimistic.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self):
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="ci")
    p.add_argument("--n", type=int, default=200, help="validation and test messages each (default 200)")
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--rank", type=int)
    p.add_argument("--batching", default="padded", help="padded (Day 2's default), bucketed or padding_free")
    p.add_argument("--fresh", action="store_true", help="build the ci model in a temporary cache, timed")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval (default 1000)")
    a = p.parse_args(argv)
    if a.fresh:
        os.environ["LORAWEEK_CACHE"] = tempfile.mkdtemp(prefix="loraweek-bench-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from loraweek.data import schema
    from loraweek.metrics.answers import majority_answers, score_answers, score_table
    from loraweek.metrics import report
    from loraweek.generation import generate_answers
    from loraweek.profiles import CI_MODEL_ID, get_profile
    from loraweek.models.tiny import ensure_ci_model
    from loraweek.training import run_qlora

    profile = get_profile(a.profile)
    changes = {k: v for k, v in dict(max_steps=a.steps, learning_rate=a.lr, lora_r=a.rank,
                                     lora_alpha=2 * a.rank if a.rank else None).items() if v}
    profile = profile.replace(**changes)
    print(f"profile {profile.name}: {profile.max_steps} steps, lr {profile.learning_rate:g}, r {profile.lora_r}, "
          f"batch {profile.batch_size} ({a.batching}), {torch.get_num_threads()} threads")
    if profile.model_id == CI_MODEL_ID:
        from loraweek.cache import cache_root
        from loraweek.models.tiny import ci_model_hash

        cached = (cache_root() / f"tiny-qwen2-ci-{ci_model_hash()}" / "config.json").exists()
        with Timer() as build:
            ensure_ci_model()
        print(f"ci model {'found in the cache' if cached else 'build (tokenizer + pretraining)'}: {build}")
    from loraweek.models import load_tokenizer

    if changes or a.batching != "padded":  # not the profile's recipe: train it here, not into the cache
        with Timer() as training, tempfile.TemporaryDirectory() as out:
            result = run_qlora(profile, out, resume=False, progress=False, batching=a.batching)
        print(f"Day 2 training run: {training} (trainer: {result.report})")
        model = result.model
    else:
        from loraweek.models.finetuned import course_adapter, load_course_model

        with Timer() as training:
            adapter = course_adapter(profile, progress=False)
        trained = json.loads((adapter / "recipe.json").read_text()).get("report", "(Day 2's adapter)")
        print(f"course adapter {adapter} ({training}; trainer: {trained})")
        model, _ = load_course_model(profile, progress=False)
    model.eval()
    splits = schema.load_splits()
    tokenizer = load_tokenizer(profile, verbose=False)
    table, outcomes = {}, {}
    for split in ("validation", "test"):
        examples = splits[split][: a.n]
        with Timer() as gen_t:
            with model.disable_adapter():
                base = generate_answers(model, tokenizer, examples, profile.max_new_tokens, batch_size=32)
            tuned = generate_answers(model, tokenizer, examples, profile.max_new_tokens, batch_size=32)
        print(f"{split}: generated {2 * len(examples)} answers in {gen_t}")
        majority = majority_answers(splits["train"], examples)
        table[split] = {"base": score_answers(examples, base), "fine-tuned": score_answers(examples, tuned),
                        "majority": score_answers(examples, majority)}
        outcomes[split] = {name: report.score_system(examples, answers)
                           for name, answers in (("base", base), ("fine-tuned", tuned), ("majority", majority))}
        print(f"  e.g. base:       {base[0][:100]!r}\n       fine-tuned: {tuned[0][:100]!r}")

    print("\n" + score_table(table))
    print(f"\nwith 95% bootstrap intervals ({a.resamples} resamples, seed 0):")
    for split, systems in outcomes.items():
        print(f"{split} (n={len(splits[split][: a.n])})")
        for metric in INTERVAL_METRICS:
            cells = []
            for name, scores in systems.items():
                iv = scores.interval(metric, a.resamples)
                cells.append(f"{name} {iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]")
            print(f"  {metric:<18} " + " | ".join(cells))
    print(general_knowledge(model, tokenizer))
    return 0


INTERVAL_METRICS = ("json_valid", "intent_accuracy", "priority_accuracy", "language_accuracy", "intent_macro_f1")


def general_knowledge(model, tokenizer) -> str:
    """Day 4's general multiple-choice set, scored by log-likelihood, with the adapter off and on."""
    from loraweek.metrics import loglik, probe_sets, stats

    items, delimiter = probe_sets.mcq_items("general", tokenizer), probe_sets.MCQ_DELIMITER["general"]
    with model.disable_adapter():
        before = loglik.score_multiple_choice(model, tokenizer, items, delimiter=delimiter)
    after = loglik.score_multiple_choice(model, tokenizer, items, delimiter=delimiter)
    lines = [f"\ngeneral multiple-choice set ({before.n} items, log-likelihood, normalised by {before.normalisation}):"]
    for name, r in (("base", before), ("fine-tuned", after)):
        iv = stats.mean_ci([float(c) for c in r.correct_norm])
        lines.append(f"  {name:<11} acc {r.acc:.3f}  acc_norm {r.acc_norm:.3f} [{iv.low:.3f}, {iv.high:.3f}]")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
