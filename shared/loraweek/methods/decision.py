"""Choosing a method: a weighted decision matrix, with its normalisation made explicit, and a
sensitivity check (the course notes' method: purpose -> criteria -> weights -> scores ->
biases -> sensitivity).

1. Criteria, each with a direction: "max" (more is better) or "min" (less is better).
2. Normalise each criterion over the candidates with min-max scaling so that 1 = the best
   candidate and 0 = the worst (all equal -> 1 for everyone).  Without it, a criterion in
   MB would drown one in [0, 1].
3. Weights are made to sum to 1; a method's score is the weighted sum of its normalised values.
4. Sensitivity: drop each criterion (weight 0) or double its weight, one at a time, and
   report whether the winner changes.  A choice that flips when one weight moves a little
   is a coin toss dressed up as a decision.
"""
from __future__ import annotations

CRITERIA = {
    "quality": "max",          # intent macro-F1 on validation messages (see `quality_measure`)
    "memory": "min",           # training memory, MB
    "train_time": "min",       # seconds per optimizer step
    "latency": "min",          # ms per generated token, as it would be served (merged if it can merge)
    "checkpoint": "min",       # MB on disk per variant
    "many_variants": "max",    # can many variants share one base in memory (1), partly (0.5), no (0)
}

# Serving many variants on one base: peft adapters hot-swap (peft, vLLM multi-LoRA); a
# bottleneck adapter can too, but with our own code only; a full model per variant cannot.
MANY_VARIANTS = {"full": 0.0, "hft": 0.0, "bottleneck": 0.5}


def quality_measure(results) -> tuple[str, dict]:
    """(what it is, {method: value}): intent macro-F1 where the methods differ on it; else the
    reference answer's mean per-token probability on validation, exp(-validation loss).

    A criterion equal for every candidate cannot rank them (min-max scaling gives everyone 1).
    At a very short budget (grading sizes; 20 steps on the ci model) no method writes valid JSON
    yet and every F1 is 0, while the validation loss already separates them."""
    import math

    f1 = {r.method: r.intent_f1 for r in results}
    if len(set(f1.values())) > 1:
        return "intent macro-F1", f1
    return "exp(-validation loss)", {r.method: math.exp(-r.val_loss) for r in results}


def criteria_table(results) -> dict:
    """{method: {criterion: value}} read off the measured table (`compare.MethodResult`s)."""
    table = {}
    quality = quality_measure(results)[1]
    for r in results:
        latency = r.ms_per_token_merged if r.ms_per_token_merged is not None else r.ms_per_token
        table[r.method] = {"quality": quality[r.method], "memory": r.memory_mb, "train_time": r.s_per_step,
                           "latency": latency, "checkpoint": r.checkpoint_mb,
                           "many_variants": MANY_VARIANTS.get(r.method, 1.0)}
    return table


def _criteria_of(table: dict, directions: dict) -> list[str]:
    if not table:
        raise ValueError("table must hold at least one candidate")
    for d in directions.values():
        if d not in ("max", "min"):
            raise ValueError(f"directions values must be 'max' or 'min', got {d!r}")
    for method, row in table.items():
        if set(row) != set(directions):
            raise ValueError(f"table[{method!r}] has criteria {sorted(row)}, expected {sorted(directions)}")
    return list(directions)


def check_weights(weights, criteria) -> dict:
    """Weights as {criterion: weight >= 0} summing to 1; a list is read in `criteria` order."""
    criteria = list(criteria)
    if not isinstance(weights, dict):
        weights = list(weights)
        if len(weights) != len(criteria):
            raise ValueError(f"weights has {len(weights)} values but there are {len(criteria)} criteria "
                             f"({', '.join(criteria)}): give one weight per criterion")
        weights = dict(zip(criteria, weights))
    missing, unknown = set(criteria) - set(weights), set(weights) - set(criteria)
    if missing or unknown:
        raise ValueError(f"weights must have exactly the criteria {', '.join(criteria)}; "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be >= 0, got {weights}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must not all be 0")
    return {c: weights[c] / total for c in criteria}


def normalise(values: dict, direction: str) -> dict:
    """Min-max over the candidates: 1 = best, 0 = worst; all equal -> 1."""
    lo, hi = min(values.values()), max(values.values())
    if hi == lo:
        return {k: 1.0 for k in values}
    if direction == "max":
        return {k: (v - lo) / (hi - lo) for k, v in values.items()}
    return {k: (hi - v) / (hi - lo) for k, v in values.items()}


def normalised_table(table: dict, directions: dict = CRITERIA) -> dict:
    criteria = _criteria_of(table, directions)
    columns = {c: normalise({m: row[c] for m, row in table.items()}, directions[c]) for c in criteria}
    return {m: {c: columns[c][m] for c in criteria} for m in table}


def weighted_scores(table: dict, weights, directions: dict = CRITERIA) -> dict:
    """{method: score in [0, 1]}: the weighted sum of its normalised criteria."""
    w = check_weights(weights, _criteria_of(table, directions))
    norm = normalised_table(table, directions)
    return {m: sum(w[c] * norm[m][c] for c in w) for m in table}


def choose(scores: dict) -> str:
    """The highest score; a tie goes to the candidate listed first."""
    order = list(scores)
    return max(order, key=lambda m: (scores[m], -order.index(m)))


def sensitivity(table: dict, weights, directions: dict = CRITERIA, factor: float = 2.0) -> list[dict]:
    """Drop, then multiply by `factor`, each criterion's weight in turn; who wins each time?"""
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    criteria = _criteria_of(table, directions)
    base = check_weights(weights, criteria)
    baseline = choose(weighted_scores(table, base, directions))
    rows = []
    for c in criteria:
        for change, new_w in (("drop", 0.0), (f"x{factor:g}", base[c] * factor)):
            w = dict(base, **{c: new_w})
            winner = choose(weighted_scores(table, w, directions)) if sum(w.values()) > 0 else None
            rows.append({"criterion": c, "change": change, "winner": winner, "changed": winner != baseline})
    return rows


def plot_sensitivity(rows: list[dict], baseline: str, ax=None):
    """One cell per (criterion, change), red where the winner changes, labelled with the winner."""
    import matplotlib.pyplot as plt

    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    changes = list(dict.fromkeys(r["change"] for r in rows))
    ax = ax or plt.subplots(figsize=(1.9 * len(criteria), 1.6))[1]
    grid = [[0.0] * len(criteria) for _ in changes]
    for r in rows:
        i, j = changes.index(r["change"]), criteria.index(r["criterion"])
        grid[i][j] = 1.0 if r["changed"] else 0.0
        ax.text(j, i, r["winner"] or "-", ha="center", va="center", fontsize=8)
    ax.imshow(grid, cmap="RdYlGn_r", vmin=0, vmax=1.6, aspect="auto")
    ax.set_xticks(range(len(criteria)), criteria, fontsize=8)
    ax.set_yticks(range(len(changes)), [f"{c} weight" for c in changes], fontsize=8)
    ax.set_title(f"winner when one weight changes (baseline: {baseline}; red = the choice flips)", fontsize=9)
    return ax
