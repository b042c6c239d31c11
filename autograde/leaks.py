"""Instructor material in a submission's outputs: find it, remove it, and report it.

A notebook that reads the instructor's source (possible only without the sandbox) or its own
hidden tests (e.g. by printing `In` after the test cells ran) could print them; nbgrader's
feedback would hand them back.  An output that holds a line of a hidden test or of a solution
-- a distinctive line that the released notebook does not show and that the student did not
write in their own cells -- is replaced as a whole by a marker, and the row is flagged.
"""
from __future__ import annotations

import json
import re

from .synth import MARKERS

HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MIN_LEN = 12          # shorter lines ("import math", "else:") are not telling
REDACTED = "[removed by the grader: instructor material]"


def _blocks(source: str, begin: str, end: str) -> list[str]:
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif inside:
            out.append(line.strip())
    return out


def instructor_lines(source_nb, release_nb) -> set[str]:
    """Lines of hidden tests and solutions that the student version does not contain."""
    public = {l.strip() for c in release_nb.cells for l in c.source.splitlines()}
    secret = set()
    for c in source_nb.cells:
        secret.update(_blocks(c.source, *HIDDEN))
        secret.update(_blocks(c.source, *MARKERS))
    secret = {l for l in secret if len(l) >= MIN_LEN and l not in public
              and not l.startswith(("#", "import ", "from "))}   # imports tell nothing
    return secret | {json.dumps(l)[1:-1] for l in secret}   # also as printed inside notebook JSON


def _texts(out) -> list[tuple[object, str]]:
    """(container, key) of every text field of an output."""
    found = []
    if "text" in out:
        found.append((out, "text"))
    for mime in list(out.get("data", {})):
        if mime.startswith("text/") or mime.endswith("json"):
            found.append((out["data"], mime))
    if "traceback" in out:
        found.append((out, "traceback"))
    if "evalue" in out:
        found.append((out, "evalue"))
    return found


def redact(nb, secret: set[str]) -> int:
    """Remove the `secret` lines a student did not write from every output; the count removed."""
    if not secret:
        return 0
    # what the student wrote: not the test cells, which nbgrader has put back from the source
    # (hidden tests included) before running them
    def is_test(c):
        meta = c.get("metadata", {}).get("nbgrader", {})
        return bool(meta.get("grade")) and not meta.get("solution")

    own = {l.strip() for c in nb.cells if not is_test(c) for l in c.source.splitlines()}
    secret = secret - own
    if not secret:
        return 0
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    n = 0

    def clean(text: str) -> str:
        """An output that holds a line of instructor material is a dump of it: all of it goes."""
        nonlocal n
        plain = ansi.sub("", text)
        if not any(s in plain for s in secret):
            return text
        n += sum(1 for line in plain.splitlines() if any(s in line for s in secret))
        return REDACTED + "\n"

    for c in nb.cells:
        for out in c.get("outputs", []):
            for holder, key in _texts(out):
                if key == "traceback":
                    # frames quote the code that ran: a failing hidden check quotes itself (the
                    # feedback drops test-cell tracebacks), a student cell quotes the package
                    continue
                v = holder[key]
                if isinstance(v, list):
                    holder[key] = [clean(x) if isinstance(x, str) else x for x in v]
                elif isinstance(v, str):
                    holder[key] = clean(v)
    return n
