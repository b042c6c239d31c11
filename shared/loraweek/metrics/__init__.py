"""The course's evaluation metrics (Day 4).

Plain functions live in the topic modules (text, classification, stats, grouping,
loglik, perplexity).  The same metrics are also `evaluate` modules that live in this
repository (`modules/<name>/<name>.py`), so `evaluate.load` never downloads anything:

    from loraweek.metrics import load
    chrf = load("chrf")                 # == evaluate.load("<this folder>/modules/chrf")
    chrf.compute(predictions=[...], references=[...])
"""
from __future__ import annotations

import os
from pathlib import Path

MODULES_DIR = Path(__file__).resolve().parent / "modules"
MODULES = ("chrf", "bleu", "rouge_l", "exact_match", "json_validity", "field_accuracy", "intent_f1")


def module_path(name: str) -> Path:
    """The local folder of a course metric; a clear error instead of a silent hub lookup."""
    path = MODULES_DIR / name
    if name not in MODULES or not (path / f"{name}.py").is_file():
        raise ValueError(f"name must be one of the course's metrics {', '.join(MODULES)}; got {name!r}")
    return path


def load(name: str):
    """evaluate.load on the local module folder, with evaluate's offline mode on: no network at load time."""
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    return evaluate.load(str(module_path(name)))
