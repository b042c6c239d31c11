"""How long does scoring take?  400 answers, every Day 4 metric, three ways, side by side.

- course report: per-example statistics once (`loraweek.metrics.report.score_system`), then
  1,000-resample bootstrap intervals for every metric from those statistics;
- evaluate modules: the course's `evaluate` metric modules (`loraweek.metrics.load`), point values only;
- naive bootstrap: recompute sacrebleu's corpus BLEU from the strings on every resample
  (measured on a few resamples, extrapolated to 1,000).

    HF_HUB_OFFLINE=1 .venv/bin/python -m scripts.bench_eval       # from the repository root; installed: loraweek-bench-eval

The answers are the references with every third one broken (invalid JSON), so nothing needs a model.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)  # no options: --help only
    t0 = time.perf_counter()
    import rouge_score.rouge_scorer  # noqa: F401  (imported once per process: timed apart)
    import sacrebleu.metrics  # noqa: F401

    from loraweek.data.schema import load_split
    from loraweek.metrics import MODULES, load, report, stats, text
    print(f"importing sacrebleu, rouge_score and the course's metrics: {time.perf_counter() - t0:.1f} s (once per process)")

    examples = load_split("test")
    answers = [ex.target_json() if i % 3 else "not json" for i, ex in enumerate(examples)]
    refs = [ex.reply for ex in examples]
    rows = []

    t0 = time.perf_counter()
    scores = report.score_system(examples, answers)
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name in report.METRICS:
        scores.interval(name, n_resamples=1000)
    rows.append(("course report", t_stats, time.perf_counter() - t0))

    modules = {name: load(name) for name in MODULES}
    t0 = time.perf_counter()
    for name, module in modules.items():
        if name == "json_validity":
            module.compute(predictions=answers)
        elif name in ("field_accuracy", "intent_f1"):
            module.compute(predictions=answers, references=[ex.target_json() for ex in examples])
        else:
            module.compute(predictions=report.replies(answers), references=refs)
    rows.append(("evaluate modules", time.perf_counter() - t0, float("nan")))

    replies, k = report.replies(answers), 20
    t0 = time.perf_counter()
    for idx in stats.resample_indices(len(examples), k, seed=0):
        text.bleu([replies[i] for i in idx], [refs[i] for i in idx])
    rows.append(("naive BLEU bootstrap", float("nan"), (time.perf_counter() - t0) / k * 1000))

    print(f"{len(examples)} answers, {len(report.METRICS)} metrics")
    print(f"{'method':22s} {'point values s':>15s} {'1,000-resample intervals s':>28s}")
    for name, point, boot in rows:
        print(f"{name:22s} {point:15.2f} {boot:28.2f}")
    print("(naive BLEU bootstrap: BLEU alone, extrapolated from", k, "resamples)")
    print("BLEU from the course report vs sacrebleu on the strings:",
          round(scores.point("reply_bleu"), 6), round(text.bleu(replies, refs)["bleu"], 6),
          "| equal:", bool(np.isclose(scores.point("reply_bleu"), text.bleu(replies, refs)["bleu"])))


if __name__ == "__main__":
    main()
