"""Synthetic submissions built from the instructor notebooks, for the tests and the benchmark.

* perfect: the released notebook with every solution cell answered by the instructor's code
  (the solution markers removed) -- what a perfect student hands in;
* blank: the released notebook untouched;
* one-blank(ex): perfect, except exercise `ex` keeps the student stub;
* with_answer(ex, code): perfect, except exercise `ex` is answered by `code`.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from .integrity import graded_cells

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _solution_text(source: str) -> str:
    return "\n".join(l for l in source.splitlines() if l.strip() not in MARKERS)


def solution_ids(nb) -> list[str]:
    return [c.metadata.nbgrader["grade_id"] for c in graded_cells(nb)
            if c.metadata.nbgrader.get("solution") and c.cell_type == "code"]


def exercise_tests(source_nb) -> dict[str, list[str]]:
    """solution grade id -> the test cells that grade it: by name (ex_<name> -> test_<name>...,
    longest name wins), else the test cells between this solution cell and the next one."""
    cells = graded_cells(source_nb)
    sols = solution_ids(source_nb)
    tests = [c.metadata.nbgrader["grade_id"] for c in cells
             if c.metadata.nbgrader.get("grade") and not c.metadata.nbgrader.get("solution")]
    names = {s: s[3:] if s.startswith("ex_") else s for s in sols}
    out: dict[str, list[str]] = {s: [] for s in sols}
    for t in tests:
        tname = t[5:] if t.startswith("test_") else t
        best = max((s for s in sols if tname == names[s] or tname.startswith(names[s] + "_")),
                   key=lambda s: len(names[s]), default=None)
        if best:
            out[best].append(t)
    current = None
    for c in cells:  # positional fallback for exercises without a matching name
        gid = c.metadata.nbgrader["grade_id"]
        if gid in out:
            current = gid
        elif current and not out[current] and c.metadata.nbgrader.get("grade") and gid in tests \
                and not any(gid in v for v in out.values()):
            out[current].append(gid)
    return out


def _answers(source_nb) -> dict[str, str]:
    return {c.metadata.nbgrader["grade_id"]: _solution_text(c.source) for c in graded_cells(source_nb)
            if c.metadata.nbgrader.get("solution")}


def build(source_path: Path, release_path: Path, blank: tuple[str, ...] = (),
          answers: dict[str, str] | None = None):
    """The released notebook answered with the solutions, except the `blank` exercises
    (student stub kept) and `answers` (exercise id -> code)."""
    src = nbformat.read(str(source_path), as_version=4)
    nb = nbformat.read(str(release_path), as_version=4)
    sol = _answers(src)
    for c in nb.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if not meta.get("solution") or gid in blank:
            continue
        if answers and gid in answers:
            c.source = answers[gid]
        elif gid in sol:
            c.source = sol[gid]
    return nb


def perfect(source_path, release_path):
    return build(source_path, release_path)


def blank(release_path):
    return nbformat.read(str(release_path), as_version=4)


def one_blank(source_path, release_path, exercise):
    return build(source_path, release_path, blank=(exercise,))


def write(nb, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(copy.deepcopy(nb), str(path))
    return path
