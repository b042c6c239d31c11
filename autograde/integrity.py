"""Tamper and validity checks of one submitted notebook against the released student version.

nbgrader itself restores locked cells from the source when it autogrades (OverwriteCells),
drops duplicated grade ids (DeduplicateIds) and checks the cell metadata (CheckCellMetadata)
-- but it does so quietly, and a deleted test cell simply yields no grade.  This module says
*what* was changed so the gradebook can show it, and scores from the executed notebook
(`score_notebook`) so that a deleted or never-executed test cell scores 0, never full marks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

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


def read_notebook(path: Path) -> Check:
    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Check(valid=False, error=f"not valid JSON ({exc.__class__.__name__}: {exc})")
    except OSError as exc:
        return Check(valid=False, error=f"cannot read the file ({exc})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return Check(valid=False, error="JSON but not a Jupyter notebook (no list of cells)")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        for c in nb.cells:
            if c.cell_type not in ("code", "markdown", "raw") or not isinstance(c.get("source", ""), str):
                raise ValueError(f"bad cell {c.get('cell_type')!r}")
    except Exception as exc:  # nbformat raises many kinds
        return Check(valid=False, error=f"not a readable notebook ({exc.__class__.__name__}: {exc})")
    return Check(nb=nb)


def check_submission(path: Path, release_path: Path) -> Check:
    """Read `path` and compare its graded cells with the released notebook's."""
    check = read_notebook(path)
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
        if rmeta.get("locked") and not rmeta.get("solution") and c.source.rstrip() != r.source.rstrip():
            check.problems.append(f"locked cell {gid} was edited")
    return check


def test_cells(source_nb) -> dict[str, float]:
    """grade id -> points of the autograded (test) cells of the instructor notebook."""
    return {c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader.get("points", 0))
            for c in graded_cells(source_nb)
            if c.metadata.nbgrader.get("grade") and not c.metadata.nbgrader.get("solution")}


TIMEOUT_ENAMES = ("CellTimeoutError", "TimeoutError")
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
    for c in executed_nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                text = f"{o.get('ename', '')}: {o.get('evalue', '')}"
                if o.get("ename") in TIMEOUT_ENAMES:
                    timed_out = True
                if any(m in text for m in MEMORY_MARKERS):
                    out_of_memory = True
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
    return {"scores": scores, "notes": notes, "timed_out": timed_out, "out_of_memory": out_of_memory}


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
