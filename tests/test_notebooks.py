"""Papermill executes every notebook in solutions/ in the ci profile (whatever is there).

Executed notebooks are kept as artifacts in build/test-notebooks/.
"""
import pytest

from loraweek.notebook.execute import execute_notebook
from scripts.run_course import BUILD, course_notebooks

NOTEBOOKS = course_notebooks()
ARTIFACTS = BUILD / "test-notebooks"
CELL_TIMEOUT_S = 1200  # a hang guard: a cell of Day 3 takes minutes on a 2-core CI worker sharing its cores


def test_there_are_notebooks():
    assert NOTEBOOKS, "solutions/week06/ holds no notebooks"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_ci_profile(path):
    run = execute_notebook(path, ARTIFACTS, profile="ci", cell_timeout=CELL_TIMEOUT_S)
    assert run.ok, f"{path.name} failed ({run.error}); executed notebook: {run.output}"
    assert run.summary, f"{path.name} printed no 'SUMMARY {{json}}' line in its last cell"
    assert run.summary.get("profile", "ci") == "ci"
    if "eval_loss_before" in run.summary:  # a notebook that trains must have learned something
        assert run.summary["eval_loss_after"] < run.summary["eval_loss_before"], run.summary
    if "reload_identical" in run.summary:
        assert run.summary["reload_identical"] is True, run.summary
