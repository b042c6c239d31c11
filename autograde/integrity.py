"""Tamper and validity checks of one submitted notebook against the released student version.

nbgrader itself restores locked cells from the source when it autogrades (OverwriteCells),
drops duplicated grade ids (DeduplicateIds) and checks the cell metadata (CheckCellMetadata)
-- but it does so quietly, and a deleted test cell simply yields no grade.  This module says
*what* was changed so the gradebook can show it, and scores from the executed notebook
(`score_notebook`) so that a deleted or never-executed test cell scores 0, never full marks.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

from . import MAX_NOTEBOOK_MB
from .collect import json_shape_problem, limit_bytes, rejected_reason, size_reason

NBGRADER_FLAGS = ("grade", "solution", "locked", "points", "task")


@dataclass
class Check:
    valid: bool = True
    problems: list[str] = field(default_factory=list)   # tampering found
    error: str = ""                                      # why the file is not a notebook
    nb: object = None

    @property
    def tampered(self) -> bool:
        return bool(self.problems)


def graded_cells(nb) -> list:
    """Cells carrying nbgrader metadata with a grade id, in notebook order."""
    return [c for c in nb.cells if isinstance(c.get("metadata"), dict) and
            isinstance(c.metadata.get("nbgrader"), dict) and c.metadata.nbgrader.get("grade_id")]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return f"{exc.__class__.__name__}: {text if len(text) <= 300 else text[:300] + ' ...'}"


def read_notebook(path: Path, max_mb: float | None = MAX_NOTEBOOK_MB) -> Check:
    """The notebook at `path`, or (valid=False, error=why) -- never an exception, whatever the
    file holds.  Its size is checked (stat) before a byte is read, and a file over `max_mb`
    MiB (None: no limit) is never read: '1,536 MB > 100 MB limit'.  JSON nested too deep or
    with more values than a notebook could need is refused before it is parsed
    (collect.json_shape_problem).  Where collect left a rejected marker instead of the
    notebook (collect.rejected_marker), its reason is the error."""
    try:
        return _read_notebook(Path(path), max_mb)
    except MemoryError:
        return Check(valid=False, error="not a readable notebook (too large to read into memory)")
    except RecursionError:
        return Check(valid=False, error="not a readable notebook (nested too deep)")
    except Exception as exc:
        return Check(valid=False, error=f"not a readable notebook ({_short(exc)})")


def _read_notebook(path: Path, max_mb: float | None) -> Check:
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        return Check(valid=False, error=rejected_reason(path) or f"cannot read the file ({exc})")
    except (OSError, ValueError) as exc:
        return Check(valid=False, error=f"cannot read the file ({exc})")
    if not stat.S_ISREG(st.st_mode):
        return Check(valid=False, error="cannot read the file (not a regular file)")
    limit = limit_bytes(max_mb)
    if limit is not None and st.st_size > limit:
        return Check(valid=False, error=size_reason(st.st_size, max_mb))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return Check(valid=False, error="cannot read the file (not a regular file)")
            raw = f.read() if limit is None else f.read(limit + 1)
    except OSError as exc:
        return Check(valid=False, error=f"cannot read the file ({exc})")
    if limit is not None and len(raw) > limit:         # it grew after the stat
        return Check(valid=False, error=size_reason(len(raw), max_mb))
    problem = json_shape_problem(raw)
    if problem:
        return Check(valid=False, error=f"not a readable notebook ({problem})")
    try:
        text = raw.decode("utf-8-sig")                  # a BOM (Windows editors) is allowed
        del raw
        data = json.loads(text)
    except ValueError as exc:                           # UnicodeDecodeError, JSONDecodeError
        return Check(valid=False, error=f"not valid JSON ({_short(exc)})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return Check(valid=False, error="JSON but not a Jupyter notebook (no list of cells)")
    del data
    try:
        nb = nbformat.reads(text, as_version=4)
        for i, c in enumerate(nb.cells):
            if c.cell_type not in ("code", "markdown", "raw") or not isinstance(c.get("source", ""), str):
                raise ValueError(f"bad cell {str(c.get('cell_type'))[:40]!r}")
            meta = c.get("metadata")
            grader = meta.get("nbgrader") if isinstance(meta, dict) else None
            if isinstance(grader, dict) and grader.get("grade_id") and not isinstance(grader["grade_id"], str):
                raise ValueError(f"cell {i + 1}: its nbgrader grade_id is not a string")
    except Exception as exc:  # nbformat raises many kinds
        return Check(valid=False, error=f"not a readable notebook ({_short(exc)})")
    return Check(nb=nb)


def _canonical(source: str) -> str:
    """A cell's source as the tamper check compares it: what editors change on their own --
    line ends (CRLF from Windows editors and Colab, lone CR), trailing spaces and tabs, blank
    lines at the end, a BOM -- is normalised; any other change (a character, an indent, a line
    added or removed in the middle) still counts as an edit."""
    text = source.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip(" \t") for line in text.split("\n")).rstrip("\n")


def check_submission(path: Path, release_path: Path, max_mb: float | None = MAX_NOTEBOOK_MB) -> Check:
    """Read `path` (read_notebook: never raises, a file over `max_mb` MiB is not read) and
    compare its graded cells with the released notebook's."""
    check = read_notebook(path, max_mb=max_mb)
    if not check.valid:
        return check
    nb, ref = check.nb, nbformat.read(str(release_path), as_version=4)
    ref_cells = {c.metadata.nbgrader["grade_id"]: c for c in graded_cells(ref)}
    ref_order = list(ref_cells)
    got = []
    for c in graded_cells(nb):
        got.append(c.metadata.nbgrader["grade_id"])
    seen = set()
    for gid in got:
        if gid in seen:
            check.problems.append(f"graded cell {gid} is duplicated")
        seen.add(gid)
        if gid not in ref_cells:
            check.problems.append(f"unknown graded cell {gid} (not in the released notebook)")
    for gid in ref_order:
        if gid not in seen:
            check.problems.append(f"graded cell {gid} was deleted (or its nbgrader metadata removed)")
    common = [g for g in dict.fromkeys(got) if g in ref_cells]
    if common != [g for g in ref_order if g in seen]:
        check.problems.append("graded cells were reordered: " + ", ".join(common))
    first = {}
    for c in graded_cells(nb):
        first.setdefault(c.metadata.nbgrader["grade_id"], c)
    for gid, c in first.items():
        r = ref_cells.get(gid)
        if r is None:
            continue
        meta, rmeta = c.metadata.nbgrader, r.metadata.nbgrader
        changed = [k for k in NBGRADER_FLAGS if meta.get(k) != rmeta.get(k)]
        if changed or c.cell_type != r.cell_type:
            check.problems.append(f"nbgrader metadata of {gid} was edited ({', '.join(changed) or 'cell type'})")
        if rmeta.get("locked") and not rmeta.get("solution") and _canonical(c.source) != _canonical(r.source):
            check.problems.append(f"locked cell {gid} was edited")
    return check


def test_cells(source_nb) -> dict[str, float]:
    """grade id -> points of the autograded (test) cells of the instructor notebook."""
    return {c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader.get("points", 0))
            for c in graded_cells(source_nb)
            if c.metadata.nbgrader.get("grade") and not c.metadata.nbgrader.get("solution")}


TIMEOUT_ENAMES = ("CellTimeoutError", "TimeoutError")
# a write refused by a size-capped folder (the jail's /tmp or home): ENOSPC, or EDQUOT
DISK_FULL_MARKERS = ("No space left on device", "Errno 28", "Disk quota exceeded")
MEMORY_MARKERS = ("MemoryError", "can't allocate memory", "CUDA out of memory",
                  "OutOfMemoryError", "Cannot allocate memory")


def score_notebook(executed_nb, points: dict[str, float]) -> dict:
    """Scores of the test cells of an executed (autograded) notebook, decided with nbgrader's
    own rule (nbgrader.utils.determine_grade), plus what went wrong.  A test cell that is
    missing or was never executed scores 0."""
    cells = {}
    for c in graded_cells(executed_nb):
        cells.setdefault(c.metadata.nbgrader["grade_id"], c)
    scores, notes = {}, []
    timed_out = out_of_memory = False
    timed_out_cells, full_disk_cells = [], []   # where: grade id, else "cell N"
    for i, c in enumerate(executed_nb.cells):
        where = (c.get("metadata", {}).get("nbgrader", {}) or {}).get("grade_id") or f"cell {i + 1}"
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                text = f"{o.get('ename', '')}: {o.get('evalue', '')}"
                if o.get("ename") in TIMEOUT_ENAMES:
                    timed_out = True
                    timed_out_cells.append(where)
                if any(m in text for m in MEMORY_MARKERS):
                    out_of_memory = True
                if any(m in text for m in DISK_FULL_MARKERS):
                    full_disk_cells.append(where)
    for gid, pts in points.items():
        c = cells.get(gid)
        if c is None:
            scores[gid] = 0.0
            notes.append(f"{gid}: test cell missing")
            continue
        if c.cell_type != "code" or c.get("execution_count") is None:
            scores[gid] = 0.0
            notes.append(f"{gid}: test cell was not executed")
            continue
        c = nbformat.from_dict(json.loads(json.dumps(c)))
        c.metadata.nbgrader["points"] = pts
        c.metadata.nbgrader["grade"] = True
        c.metadata.nbgrader["solution"] = False
        score, _ = nbutils.determine_grade(c)
        scores[gid] = float(min(max(score or 0.0, 0.0), pts))
    return {"scores": scores, "notes": notes, "timed_out": timed_out, "out_of_memory": out_of_memory,
            "timed_out_cells": list(dict.fromkeys(timed_out_cells)),
            "full_disk_cells": list(dict.fromkeys(full_disk_cells))}


def sanitize(nb, release_nb) -> object:
    """What nbgrader is given: graded cells it can handle.  nbgrader 0.9.6 crashes on a
    duplicated grade id (DeduplicateIds empties the metadata, CheckCellMetadata then rejects
    it) and on unknown grade ids, so the later copies / unknown ids lose their nbgrader
    metadata here (the tamper check has already reported them); cell ids are made unique."""
    import uuid

    known = {c.metadata.nbgrader["grade_id"] for c in graded_cells(release_nb)}
    seen, ids = set(), set()
    for c in nb.cells:
        meta = c.get("metadata", {})
        if "nbgrader" in meta:
            gid = meta["nbgrader"].get("grade_id") if isinstance(meta["nbgrader"], dict) else None
            if gid not in known or gid in seen:
                del meta["nbgrader"]
            else:
                seen.add(gid)
        if "id" in c:
            if not isinstance(c["id"], str) or c["id"] in ids:
                c["id"] = uuid.uuid4().hex[:8]
            ids.add(c["id"])
    return nb
