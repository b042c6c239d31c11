"""The parallel suite's scheduler (tests/suite_scheduling.py), run for real: pytest-xdist with two
workers on a small suite laid out like ours (a split notebooks file, a module fixture, quick tests)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from suite_scheduling import read_durations, unit_of  # noqa: E402

# the toy's conftest loads the scheduler plugin exactly as tests/conftest.py does
CONFTEST = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
pytest_plugins = ("suite_scheduling",)
"""
# every test appends "worker test pid" to LOG, so the test below sees who ran what, in which order
TOY = {
    "test_notebooks.py": """
import os, time, pytest
@pytest.mark.parametrize("seconds", [0.1, 2.0, 0.3])
def test_notebook(seconds):
    time.sleep(seconds)
    open(os.environ["LOG"], "a").write(f"{os.environ['PYTEST_XDIST_WORKER']} nb{seconds} {os.getpid()}\\n")
""",
    "test_grading.py": """
import os, time, pytest
BUILT = []
@pytest.fixture(scope="module")
def graded():
    BUILT.append(1); time.sleep(0.5); return os.getpid()
@pytest.mark.parametrize("i", range(3))
def test_graded(graded, i):
    assert graded == os.getpid() and BUILT == [1]
    open(os.environ["LOG"], "a").write(f"{os.environ['PYTEST_XDIST_WORKER']} grading {os.getpid()}\\n")
""",
    "test_quick.py": """
import os, pytest
@pytest.mark.parametrize("i", range(8))
def test_quick(i):
    open(os.environ["LOG"], "a").write(f"{os.environ['PYTEST_XDIST_WORKER']} quick {os.getpid()}\\n")
""",
}


def _toy(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    for name, source in TOY.items():
        (root / "tests" / name).write_text(source)
    return root


def _pytest(root: Path, *args: str, log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOG": str(log), "PYTEST_XDIST_WORKER": "serial"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "tests"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_units_are_files_except_the_notebooks():
    assert unit_of("tests/test_grading.py::test_x[a::b]") == "tests/test_grading.py"
    assert unit_of("tests/test_grading.py::TestC::test_y") == "tests/test_grading.py"
    nb = "tests/test_notebooks.py::test_notebook_runs_in_ci_profile[day3_method_comparison]"
    assert unit_of(nb) == nb


def test_a_broken_record_says_which_file_and_how_to_mend_it(tmp_path):
    assert read_durations(tmp_path / "absent.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit, match=r"bad\.json: not a JSON object .*--record-durations"):
        read_durations(bad)


def test_two_workers_run_the_longest_unit_first_and_keep_a_module_together(tmp_path):
    root = _toy(tmp_path / "toy")
    serial_log = tmp_path / "serial.log"
    out = _pytest(root, "--record-durations", log=serial_log).stdout
    record = json.loads((root / "tests" / "suite_durations.json").read_text())
    assert "recorded 14 tests' durations" in out and len(record) == 14
    assert record["tests/test_notebooks.py::test_notebook[2.0]"] >= 2.0

    log = tmp_path / "parallel.log"
    _pytest(root, "-n", "2", "--dist", "loadscope", log=log)
    rows = [line.split() for line in log.read_text().splitlines()]
    firsts = {}
    for worker, what, _ in rows:
        firsts.setdefault(worker, what)
    # the two longest units (the 2-second notebook; the graded module) start first, one per worker
    assert sorted(firsts.values()) == ["grading", "nb2.0"], rows
    # the module's fixture was built once, on one worker, for all of its tests
    assert len({(w, pid) for w, what, pid in rows if what == "grading"}) == 1, rows
    # the notebooks were spread: the short ones ran beside the long one
    assert len({w for w, what, _ in rows if what.startswith("nb")}) == 2, rows
