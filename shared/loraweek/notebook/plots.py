"""Plots the notebooks share: class balance, loss curves."""
from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt


def plot_class_balance(examples, title: str = "Intents per language (train)"):
    counts = Counter((ex.intent, ex.language) for ex in examples)
    intents = sorted({i for i, _ in counts}, key=lambda i: -sum(counts[(i, l)] for l in ("vi", "en")))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    left = [0] * len(intents)
    for lang, color in (("vi", "tab:red"), ("en", "tab:blue")):
        values = [counts[(i, lang)] for i in intents]
        ax.barh(intents, values, left=left, color=color, label=lang)
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("examples"); ax.set_title(title); ax.legend()
    fig.tight_layout()
    return fig


def plot_loss_curves(histories: dict, title: str = "Loss", ax=None):
    """histories: label -> loraweek.training.LossHistory.  Solid = train, dashed = validation."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        ax.plot(h.train_steps, h.train_loss, color=color, label=f"{label} train")
        if h.eval_steps:
            ax.plot(h.eval_steps, h.eval_loss, color=color, linestyle="--", marker="o", label=f"{label} validation")
    ax.set_xlabel("optimizer step"); ax.set_ylabel("cross-entropy"); ax.set_title(title); ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax
