"""weeks/week06 is exactly what `python -m autograde release` generates from solutions/week06,
and no student notebook leaks a solution or a hidden test."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions" / "week06").glob("*.ipynb"))
STUDENT = sorted((ROOT / "weeks" / "week06").glob("*.ipynb"))
FIXTURES = ROOT / "tests" / "fixtures" / "week06"


def _release(*args, cwd=ROOT):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "autograde", "release", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not SOLUTIONS, reason="no notebooks in solutions/week06 yet")
def test_weeks_is_generated_from_solutions():
    r = _release()
    assert r.returncode == 0, f"weeks/week06 drifted from solutions/week06:\n{r.stdout}\n{r.stderr}"


def test_every_solution_has_a_student_notebook():
    assert sorted(p.name for p in SOLUTIONS) == sorted(p.name for p in STUDENT)


@pytest.mark.parametrize("path", STUDENT, ids=[p.name for p in STUDENT])
def test_student_notebook_has_no_solution_or_hidden_test(path):
    text = path.read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        assert not cell.get("outputs"), f"{path.name}: committed with outputs"


def test_release_check_catches_a_hand_edit(tmp_path, capsys):
    """The check fails when a student notebook is edited by hand or a stray notebook appears,
    and --update repairs it (in-process, on the fixture notebook, to stay fast)."""
    sys.path.insert(0, str(ROOT))
    from autograde import release

    out = tmp_path / "week06"
    assert release.run(FIXTURES, out, update=True) == 0
    assert release.run(FIXTURES, out) == 0
    nb_path = out / "day0_fixture.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.cells[-1].source += "\n# hand edit"
    nbformat.write(nb, str(nb_path))
    (out / "stray.ipynb").write_text(nb_path.read_text())
    capsys.readouterr()
    assert release.run(FIXTURES, out) == 1
    err = capsys.readouterr().err
    assert "day0_fixture.ipynb differs" in err and "stray.ipynb" in err
    assert release.run(FIXTURES, out, update=True) == 0
    assert release.run(FIXTURES, out) == 0
    assert not (out / "stray.ipynb").exists()
