"""Diagrams the notebooks draw offline with matplotlib (no image files, no network): the LoRA
branch (Day 1), where each method attaches in a decoder block (Day 3), and a request's path
through the course server (Day 5).  Each function returns a matplotlib Figure; boxes and arrows
only, so each costs well under a second."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

FROZEN, TRAINED, PLAIN, NOTE = "#d9d9d9", "#ffd27f", "#cfe2f3", "#eeeeee"


def _canvas(width: float, height: float, title: str):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width * 10)
    ax.set_ylim(0, height * 10)
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return fig, ax


def _box(ax, x, y, w, h, text, color=PLAIN, fontsize=9, style="round,pad=0.3"):
    """A box centred on (x, y); returns its edges for arrows."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style, fc=color, ec="black", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return {"left": (x - w / 2, y), "right": (x + w / 2, y), "top": (x, y + h / 2), "bottom": (x, y - h / 2)}


def _arrow(ax, start, end, text="", style="-|>", color="black", dashed=False, fontsize=8):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=1.2,
                                 linestyle="--" if dashed else "-", shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 1.2, text, ha="center", fontsize=fontsize)


def _legend(ax, x, y, items):
    for i, (color, label) in enumerate(items):
        _box(ax, x, y - i * 4, 3, 2, "", color=color, style="square,pad=0")
        ax.text(x + 3, y - i * 4, label, va="center", fontsize=8)


def lora_branch(d: int | None = None, k: int | None = None, r: int | None = None, alpha: float | None = None):
    """y = W x + (alpha / r) · B A x: the frozen weight W (d×k) beside the trained low-rank branch,
    A (r×k) then B (d×r, zero at the start), scaled by alpha / r and added.  Give the sizes of a
    real layer (d, k, r, alpha) to print them in the boxes; None keeps the symbols."""
    def name(value, symbol):
        return symbol if value is None else f"{value:,}"

    dd, kk, rr = name(d, "d"), name(k, "k"), name(r, "r")
    scale = "alpha / r" if alpha is None or r is None else f"alpha / r = {alpha:g} / {r} = {alpha / r:g}"
    fig, ax = _canvas(10, 4.6, "LoRA: a frozen weight plus a trained low-rank branch")
    x_in = _box(ax, 8, 23, 10, 6, f"x\n(k = {kk})")
    w = _box(ax, 40, 36, 22, 7, f"W  ({dd} × {kk})\nfrozen", color=FROZEN)
    a = _box(ax, 30, 12, 16, 7, f"A  ({rr} × {kk})\ntrained, random init", color=TRAINED)
    b = _box(ax, 54, 12, 16, 7, f"B  ({dd} × {rr})\ntrained, zero init", color=TRAINED)
    s = _box(ax, 75, 12, 14, 6, "× " + scale, color=TRAINED, fontsize=7)
    plus = _box(ax, 83, 28, 5, 5, "+", fontsize=14, style="circle,pad=0.3")
    y = _box(ax, 95, 28, 6, 6, f"y\n({dd})")
    _arrow(ax, x_in["right"], w["left"], "W x")
    _arrow(ax, x_in["right"], a["left"])
    ax.text(22, 15, "A x: r numbers", ha="right", fontsize=8)
    _arrow(ax, a["right"], b["left"])
    _arrow(ax, b["right"], s["left"])
    _arrow(ax, w["right"], plus["top"])
    _arrow(ax, s["top"], plus["bottom"])
    _arrow(ax, plus["right"], y["left"])
    ax.text(50, 2, "trains r·(d + k) numbers instead of d·k; B = 0 at the start, so the model starts as the base; "
                   "merging adds (alpha/r)·B·A into W", ha="center", fontsize=8)
    _legend(ax, 2, 42, [(FROZEN, "frozen"), (TRAINED, "trained")])
    fig.tight_layout()
    return fig


# Where each method touches a decoder block (Day 3's methods): label -> (colour, what it trains).
METHOD_NOTES = {
    "LoRA": "B·A beside q, k, v, o and the MLP projections",
    "DoRA": "LoRA's direction plus a trained magnitude vector per output",
    "IA3": "a learned vector scaling k, v and the MLP's up projection",
    "prefix": "trained key/value vectors prepended in every attention layer",
    "bottleneck adapter": "a small down-up MLP after attention and after the MLP",
}


def method_attachments():
    """A decoder block (norm, attention with q/k/v/o, residual, norm, MLP, residual) with a tag
    where each method attaches: LoRA and DoRA on the linear projections, IA3 on k, v and the
    MLP, prefix tuning on the attention keys/values, the bottleneck adapter after each sub-layer."""
    fig, ax = _canvas(11, 6.2, "Where each method attaches in one decoder block")
    colors = {"LoRA": "#ffd27f", "DoRA": "#f4a582", "IA3": "#b8e186", "prefix": "#c2a5cf",
              "bottleneck adapter": "#92c5de"}
    x0 = 30
    inp = _box(ax, x0, 4, 20, 4, "hidden states in")
    n1 = _box(ax, x0, 12, 20, 4, "RMSNorm", color=FROZEN)
    att = _box(ax, x0, 23, 34, 10, "self-attention\nq_proj  k_proj  v_proj  →  softmax(q kᵀ) v  →  o_proj",
               color=FROZEN, fontsize=8)
    r1 = _box(ax, x0, 33, 6, 4, "+", fontsize=12, style="circle,pad=0.2")
    n2 = _box(ax, x0, 40, 20, 4, "RMSNorm", color=FROZEN)
    mlp = _box(ax, x0, 49, 34, 7, "MLP: gate_proj, up_proj  →  act  →  down_proj", color=FROZEN, fontsize=8)
    r2 = _box(ax, x0, 57, 6, 3, "+", fontsize=12, style="circle,pad=0.2")
    for lo, hi in ((inp, n1), (n1, att), (att, r1), (r1, n2), (n2, mlp), (mlp, r2)):
        _arrow(ax, lo["top"], hi["bottom"])
    for lo, hi in ((6, 33), (35, 57)):   # the residual connections skip each sub-layer
        ax.plot([x0 - 10, x0 - 22, x0 - 22], [lo, lo, hi], color="black", lw=1, linestyle="--")
        _arrow(ax, (x0 - 22, hi), (x0 - 3.5, hi), dashed=True)
    ax.text(x0 - 24, 18, "residual", fontsize=7, rotation=90, ha="right")
    tags = [  # (method, text, x, y, target point on the block)
        ("LoRA", "LoRA: B·A beside each projection", 78, 26, (x0 + 17, 25)),
        ("DoRA", "DoRA: LoRA + a magnitude per output", 78, 20, (x0 + 17, 21)),
        ("IA3", "IA3: scales k, v and the MLP's up_proj", 78, 50, (x0 + 17, 49)),
        ("prefix", "prefix tuning: extra keys/values per layer", 78, 32, (x0 + 10, 28)),
        ("bottleneck adapter", "bottleneck adapter: down→up MLP after a sub-layer", 78, 40, (x0 + 3, 33)),
        ("bottleneck adapter", "", 78, 40, (x0 + 3, 57)),
        ("LoRA", "", 78, 26, (x0 + 17, 49)),
    ]
    for method, text, x, y, target in tags:
        if text:
            _box(ax, x, y, 40, 3.6, text, color=colors[method], fontsize=8)
        _arrow(ax, (x - 20, y), target, color="dimgray")
    ax.text(55, 1, "grey: frozen base weights; prompt tuning (not drawn) trains only input embeddings before the first block",
            ha="center", fontsize=7)
    fig.tight_layout()
    return fig


REQUEST_STEPS = ["client\n(OpenAI SDK, curl)", "auth\n(API key / token)", "validation\n(pydantic, limits)",
                 "batching engine\n(queue, continuous batch)", "model + adapter\n(generate)",
                 "structured decoding\n(JSON schema)", "response\n(JSON / SSE stream)"]


def request_path():
    """One request through the course server: client -> auth -> validation -> batching engine ->
    model + adapter -> structured decoding -> response, with metrics and logs on the side."""
    fig, ax = _canvas(13, 3.8, "A request's path through the course server")
    n = len(REQUEST_STEPS)
    xs = [8 + i * (114 / (n - 1)) for i in range(n)]
    boxes = []
    for i, (x, text) in enumerate(zip(xs, REQUEST_STEPS)):
        color = TRAINED if "adapter" in text else PLAIN
        boxes.append(_box(ax, x, 24, 15, 8, text, color=color, fontsize=7))
    for a, b in zip(boxes, boxes[1:]):
        _arrow(ax, a["right"], b["left"])
    side = _box(ax, (xs[1] + xs[-1]) / 2, 6, xs[-1] - xs[1] + 8, 5, "metrics (/metrics, Prometheus) and logs: latency, tokens, status; never message bodies",
                color=NOTE, fontsize=7)
    for x, box in zip(xs[1:], boxes[1:]):
        _arrow(ax, box["bottom"], (x, side["top"][1]), dashed=True, color="dimgray")
    ax.text(xs[1], 31, "401", ha="center", fontsize=7, color="firebrick")
    ax.text(xs[2], 31, "400 / 422", ha="center", fontsize=7, color="firebrick")
    ax.text(xs[3], 31, "429 when full", ha="center", fontsize=7, color="firebrick")
    fig.tight_layout()
    return fig
