"""Group before you aggregate: per-group tables and Simpson's paradox.

A pooled score is a weighted average of group scores, weighted by how many examples each
group has.  If two systems are scored on different group mixes (or one system is scored
on two mixes), the pooled comparison can point the other way than *every* group does.
"""
from __future__ import annotations

from collections import Counter, defaultdict


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


def reversal_by_mix(groups, correct_a, correct_b, min_group: int = 5) -> tuple[dict, dict] | None:
    """Build a Simpson reversal from *real* per-example outcomes of two systems on the same
    examples: report A on a sample rich in one group and B on a sample rich in another (as when
    two teams evaluate on differently mixed test sets).  Returns the two count tables, or None
    when no such mix reverses the comparison (the within-group gaps are too large).

    The minority group of each sample is its first k examples, with k as *large* as a reversal
    allows and never below `min_group`: a rate resting on one or two examples would make a
    "win" out of luck, where the paradox is about the mix of honest rates."""
    if not len(groups) == len(correct_a) == len(correct_b):
        raise ValueError("groups, correct_a and correct_b must be equally long")
    names = sorted(set(groups))
    best = None
    for rich_a in names:
        for rich_b in (g for g in names if g != rich_a):
            for k in range(max(Counter(groups).values()), min_group - 1, -1):  # a larger k gives the same counts
                counts_a = {g: _first_k(groups, correct_a, g, len(groups) if g == rich_a else k) for g in names}
                counts_b = {g: _first_k(groups, correct_b, g, len(groups) if g == rich_b else k) for g in names}
                smallest = min(n for counts in (counts_a, counts_b) for _, n in counts.values())
                if smallest >= min_group and simpson_reversal(counts_a, counts_b):
                    if best is None or smallest > best[0]:
                        best = (smallest, counts_a, counts_b)
                    break
    return None if best is None else best[1:]


def reversal_between(groups, outcomes: dict, min_group: int = 5):
    """`reversal_by_mix` for two named systems, {name: per-example outcomes}, trying each as the one
    that wins inside the groups; returns ((winner-inside, other), (counts, counts)) for the reversal
    with the largest smallest group, or None."""
    (name_a, a), (name_b, b) = outcomes.items()
    found = [((x, y), r) for (x, y), r in (((name_a, name_b), reversal_by_mix(groups, a, b, min_group)),
                                           ((name_b, name_a), reversal_by_mix(groups, b, a, min_group))) if r]
    if not found:
        return None
    (x, y), (cx, cy) = max(found, key=lambda item: min(n for counts in item[1] for _, n in counts.values()))
    if all(_rate(*cy[g]) > _rate(*cx[g]) for g in cx):  # put the one winning inside the groups first
        (x, cx), (y, cy) = (y, cy), (x, cx)
    return (x, y), (cx, cy)
