"""Group before you aggregate: per-group tables and Simpson's paradox.

A pooled score is a weighted average of group scores, weighted by how many examples each
group has.  If two systems are scored on different group mixes (or one system is scored
on two mixes), the pooled comparison can point the other way than *every* group does.
"""
from __future__ import annotations

from collections import defaultdict


def group_accuracy(groups, correct) -> dict:
    """{group: (n_correct, n)} for per-example group keys and 0/1 correctness."""
    if len(groups) != len(correct):
        raise ValueError(f"groups has {len(groups)} items but correct has {len(correct)}")
    table = defaultdict(lambda: [0, 0])
    for g, c in zip(groups, correct):
        table[g][0] += int(bool(c))
        table[g][1] += 1
    return {g: tuple(v) for g, v in sorted(table.items())}


def pooled(counts: dict) -> float:
    k = sum(c for c, _ in counts.values())
    n = sum(n for _, n in counts.values())
    return k / n if n else 0.0


def _rate(c, n):
    return c / n if n else 0.0


def simpson_reversal(counts_a: dict, counts_b: dict) -> bool:
    """True when B beats A inside every group yet loses pooled, or the other way round.

    counts_*: {group: (n_correct, n)} with the same groups, every n > 0."""
    if set(counts_a) != set(counts_b) or not counts_a:
        raise ValueError(f"counts_a and counts_b must have the same non-empty groups, got "
                         f"{sorted(counts_a)} and {sorted(counts_b)}")
    for name, counts in (("counts_a", counts_a), ("counts_b", counts_b)):
        for g, (c, n) in counts.items():
            if n <= 0 or not 0 <= c <= n:
                raise ValueError(f"{name}[{g!r}] must be (n_correct, n) with 0 <= n_correct <= n and n > 0, got {(c, n)}")
    b_wins = all(_rate(*counts_b[g]) > _rate(*counts_a[g]) for g in counts_a)
    a_wins = all(_rate(*counts_a[g]) > _rate(*counts_b[g]) for g in counts_a)
    pa, pb = pooled(counts_a), pooled(counts_b)
    return (b_wins and pb < pa) or (a_wins and pa < pb)


def _first_k(groups, correct, group, k):
    picked = [c for g, c in zip(groups, correct) if g == group][:k]
    return sum(map(bool, picked)), len(picked)


def reversal_by_mix(groups, correct_a, correct_b) -> tuple[dict, dict] | None:
    """Build a Simpson reversal from *real* per-example outcomes of two systems on the same
    examples: report A on a sample rich in one group and B on a sample rich in another (as when
    two teams evaluate on differently mixed test sets).  Returns the two count tables, or None
    when no such mix reverses the comparison (the within-group gaps are too large)."""
    if not len(groups) == len(correct_a) == len(correct_b):
        raise ValueError("groups, correct_a and correct_b must be equally long")
    names = sorted(set(groups))
    for rich_a in names:
        for rich_b in (g for g in names if g != rich_a):
            for k in range(1, len(groups)):
                counts_a = {g: _first_k(groups, correct_a, g, len(groups) if g == rich_a else k) for g in names}
                counts_b = {g: _first_k(groups, correct_b, g, len(groups) if g == rich_b else k) for g in names}
                if all(n for _, n in counts_a.values()) and all(n for _, n in counts_b.values()) \
                        and simpson_reversal(counts_a, counts_b):
                    return counts_a, counts_b
    return None
