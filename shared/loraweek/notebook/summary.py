"""A notebook's last line: ``SUMMARY {json}``, the figures of its run, and which of them are its
headline.  The course runner (`scripts/run_course.py`) reads that line from the executed notebook and
prints the headline figures in its table: each notebook says what matters in its own run, so the
runner hard-codes no key (issue 23, item 3)."""
from __future__ import annotations

import json

PREFIX = "SUMMARY "
HEADLINE = "headline"   # the key, inside the JSON, that lists the headline figures' keys


def print_summary(summary: dict, headline: tuple[str, ...] | list[str]) -> None:
    """Print ``SUMMARY {json}`` with ``summary`` and, under "headline", the keys of its headline
    figures, in the order the runner shows them.  A key the summary lacks is a mistake in the
    notebook: refused here, naming it, instead of a blank column in the runner's table."""
    missing = [k for k in headline if k not in summary]
    if missing:
        raise KeyError(f"headline names {', '.join(map(repr, missing))}, which the summary lacks "
                       f"(its keys: {', '.join(summary)})")
    if HEADLINE in summary:
        raise KeyError(f"the summary may not use the key {HEADLINE!r}: it holds the headline's keys")
    print(PREFIX + json.dumps({**summary, HEADLINE: list(headline)}, default=float))


def headline_figures(summary: dict) -> dict:
    """The headline figures of a parsed summary ({key: value}); a summary printed without a
    headline (an older notebook) shows its first six plain figures instead."""
    if isinstance(summary.get(HEADLINE), list):
        return {k: summary[k] for k in summary[HEADLINE] if k in summary}
    return {k: v for k, v in list(summary.items())[:6] if not isinstance(v, (dict, list))}
