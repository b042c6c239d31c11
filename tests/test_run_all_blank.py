"""Run-all survives blank exercises: every STUDENT notebook (weeks/week06, every exercise as nbgrader
leaves it) runs top to bottom and reaches its SUMMARY line, each visible self-check saying in
one line that its exercise is not attempted yet (loraweek.notebook.selfcheck) instead of stopping the
notebook, and the cells below falling back on the course's reference answer.

Run as a student would (NBGRADER_EXECUTION unset: the self-checks report, they do not raise),
in the ci profile at the grading sizes (LORAWEEK_SIZES=grading), two notebooks at a time with one
torch thread each, like the grader (tests/test_notebooks.py already runs the solutions at the full
ci sizes; this test only needs every cell to run).  Executed notebooks: build/test-run-all-blank/.
"""
import os
from pathlib import Path

import nbformat
import pytest

from loraweek.notebook.execute import execute_notebooks
from scripts.run_course import BUILD
from loraweek.notebook.selfcheck import WARNING

ROOT = Path(__file__).resolve().parent.parent
STUDENT = sorted((ROOT / "weeks" / "week06").glob("*.ipynb"))
ARTIFACTS = BUILD / "test-run-all-blank"
CELL_TIMEOUT_S = 300
# Notebooks executed side by side, one torch thread each (the grader's --jobs 2 on CI's 2 cores).
JOBS = int(os.environ.get("LORAWEEK_TEST_JOBS", "2"))
# papermill parameters that shrink what the grading sizes do not (the grader shrinks Day 5's itself)
PARAMETERS = {"day1_lora_qlora_intro": {"COMPARE_STEPS": 2},
              "day5_deployment": {"LOAD_REQUESTS": 8, "MAX_TOKENS": 8}}
ENV = {"LORAWEEK_SIZES": "grading", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false"}


def _text(cell) -> str:
    return "".join(str(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def runs():
    """Every student notebook, executed once as a student would run it (NBGRADER_EXECUTION unset)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("NBGRADER_EXECUTION", "LORAWEEK_PROFILE"):
            mp.delenv(var, raising=False)
        for var, value in ENV.items():
            mp.setenv(var, value)
        done = execute_notebooks(STUDENT, ARTIFACTS, jobs=JOBS, parameters=PARAMETERS, profile="ci",
                                 cell_timeout=CELL_TIMEOUT_S)
    for r in done:
        print(f"{r.name}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f} s")
    return {r.name: r for r in done}


def test_there_are_student_notebooks():
    assert STUDENT, "weeks/week06/ holds no notebooks (python -m autograde release --update)"


@pytest.mark.timeout(1800)   # the first test also waits for the fixture: all five notebooks
@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_run_all_reaches_the_summary_with_every_exercise_blank(runs, path):
    run = runs[path.stem]
    assert run.ok, f"Run-all of the blank {path.name} stopped ({run.error}); executed notebook: {run.output}"
    assert run.summary, f"{path.name} printed no 'SUMMARY {{json}}' line; executed notebook: {run.output}"
    nb = nbformat.read(str(run.output), as_version=4)
    checks = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert checks, f"{path.name} has no graded self-check cell"
    for cell in checks:
        gid = cell.metadata.nbgrader["grade_id"]
        lines = [l for l in _text(cell).splitlines() if l.startswith(WARNING) and "not attempted yet" in l]
        assert len(lines) == 1, f"{path.name} {gid}: expected one 'not attempted yet' line, got {_text(cell)!r}"


def test_grading_sizes_without_grading(monkeypatch):
    """LORAWEEK_SIZES=grading gives the grader's sizes while the self-checks still report."""
    from loraweek.profiles import GRADING_SIZES, get_profile
    from loraweek.notebook.selfcheck import grading

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("LORAWEEK_SIZES", "grading")
    profile = get_profile("ci")
    assert all(getattr(profile, k) == v for k, v in GRADING_SIZES.items()), profile
    assert "LORAWEEK_SIZES" in profile.reason and not grading()
    monkeypatch.setenv("LORAWEEK_SIZES", "tiny")
    with pytest.raises(ValueError, match="LORAWEEK_SIZES"):
        get_profile("ci")
