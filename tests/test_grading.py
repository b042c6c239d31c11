"""Grading the real week-6 notebooks (every notebook in solutions/week06, discovered):

* perfect student: each solution notebook scores full marks, status "graded";
* blank student: each untouched student notebook scores zero and the pipeline completes;
* exercises left blank: every graded exercise is left blank once (the solution with that
  answer replaced by the student stub) and loses exactly its points, while every answered
  exercise keeps all of its own.  To keep CI inside its budget, each notebook's exercises are
  blanked in two submissions (alternate exercises: 1, 3, ... and 2, 4, ...) instead of one
  submission per exercise, so an exercise whose tests lean on its neighbour's answer still
  fails; `LORAWEEK_GRADING_TESTS=full` grades one submission per exercise instead;
* hand-written wrong-but-running answers lose their points (and only theirs).

All submissions are graded by ONE `python -m autograde grade --jobs 2` run shared by the tests
(module fixture), like an instructor grading a class.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402
from autograde.integrity import test_cells as points_of  # noqa: E402

SOLUTIONS = ROOT / "solutions" / "week06"
NOTEBOOKS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in solutions/week06 yet")


def _exercises():
    out = []
    for name in NOTEBOOKS:
        nb = nbformat.read(str(SOLUTIONS / f"{name}.ipynb"), as_version=4)
        for ex, tests in synth.exercise_tests(nb).items():
            out.append((name, ex, tuple(tests)))
    return out


EXERCISES = _exercises()

# Wrong answers that run: each must lose its own exercise's points and nothing else.
WRONG = {
    "ex_mask_labels": '''def mask_labels(input_ids, offsets, answer_start, answer_end):
    """Forgets to mask the prompt: trains on every token."""
    return list(input_ids)''',
    "ex_parse_answer": '''import json
def parse_answer(text):
    """Accepts any JSON at all."""
    try:
        return json.loads(text)
    except Exception:
        return None''',
    "ex_memory_estimate": '''def estimate_training_memory(n_params: float, method: str, trainable_params: float = 0,
                             activation_gb: float = 0.0, master_weights: bool = False) -> dict:
    """Counts the weights only."""
    w = n_params * 2 / 1e9
    return {"weights": w, "gradients": 0.0, "optimizer": 0.0, "activations": float(activation_gb),
            "total": w + float(activation_gb)}''',
    "ex_compare_outputs": '''def compare_outputs(reference, approx):
    """Absolute instead of relative error, agreement always 1."""
    d = (approx.double() - reference.double()).abs()
    return {"relative_error": float(d.sum()), "max_abs_error": float(d.max()), "top1_agreement": 1.0}''',
}


def _sid(*parts):
    return "-".join(p.replace("_", "") for p in parts)


def _blank_groups(ids: list[str]) -> list[tuple[str, ...]]:
    """Which exercises each 'blank' submission leaves blank (see the module docstring)."""
    if os.environ.get("LORAWEEK_GRADING_TESTS") == "full" or len(ids) < 2:
        return [(ex,) for ex in ids]
    return [tuple(ids[0::2]), tuple(ids[1::2])]


def _blank_student(name: str, group: tuple[str, ...]) -> str:
    return _sid("oneblank", name, *group) if len(group) == 1 else _sid("blanks", name, group[0])


def _blanked_with(name: str, exercise: str) -> tuple[str, tuple[str, ...]]:
    """The submission in which `exercise` is blank, and every exercise blank in it."""
    nb = nbformat.read(str(SOLUTIONS / f"{name}.ipynb"), as_version=4)
    group = next(g for g in _blank_groups(synth.solution_ids(nb)) if exercise in g)
    return _blank_student(name, group), group


def _cache():
    """The session's model cache (conftest builds the ci model there once)."""
    from loraweek.cache import cache_root

    return cache_root()


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", LORAWEEK_CACHE=str(_cache()))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from autograde.course import prepare_course

    course = prepare_course(tmp_path_factory.mktemp("grading") / "course", SOLUTIONS)
    sub = course / "submitted"
    for name in NOTEBOOKS:
        src, rel = course / "source/week06" / f"{name}.ipynb", course / "release/week06" / f"{name}.ipynb"
        synth.write(synth.perfect(src, rel), sub / "perfect/week06" / f"{name}.ipynb")
        synth.write(synth.blank(rel), sub / "blank/week06" / f"{name}.ipynb")
        ids = synth.solution_ids(nbformat.read(str(src), as_version=4))
        for group in _blank_groups(ids):
            synth.write(synth.build(src, rel, blank=group), sub / _blank_student(name, group) / "week06" / f"{name}.ipynb")
        wrong = {ex: code for ex, code in WRONG.items() if ex in ids}
        if wrong:
            synth.write(synth.build(src, rel, answers=wrong), sub / "wrong/week06" / f"{name}.ipynb")
    cmd = [sys.executable, "-m", "autograde", "grade", "--course-dir", str(course), "--solutions",
           str(SOLUTIONS), "--jobs", "2", "--timeout", "900"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=3600)
    print(r.stdout[-5000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "autograde", "export", "--course-dir", str(course),
                        "--solutions", str(SOLUTIONS)], cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    with open(course / "grades.csv", newline="") as f:
        rows = {(x["student_id"], x["notebook"]): x for x in csv.DictReader(f)}
    results = {(p.parent.name, p.stem): json.loads(p.read_text()) for p in (course / "results").glob("*/*.json")}
    return {"course": course, "rows": rows, "results": results}


def _explain(res):
    return f"status={res['status']} scores={res['scores']} reasons={res['reasons']}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_perfect_student_scores_full_marks(graded, name):
    row, res = graded["rows"][("perfect", name)], graded["results"][("perfect", name)]
    assert row["status"] == "graded", _explain(res)
    assert float(row["max_score"]) > 0
    assert float(row["score"]) == float(row["max_score"]), _explain(res)


def test_a_week_runs_in_forked_kernels_and_a_lone_notebook_in_a_fresh_one(graded):
    from collections import Counter

    from autograde.isolation import SANDBOX

    res = graded["results"]
    if any(r["isolation"] != SANDBOX for r in res.values()):
        pytest.skip("guard mode here (no bubblewrap): every kernel is fresh")
    submitted = {key: r for key, r in res.items() if r["status"] != "not submitted"}
    per_student = Counter(student for student, _ in submitted)
    for (student, name), r in submitted.items():
        expected = "forked" if per_student[student] > 1 else "fresh"
        assert r["kernel"] == expected, (student, name, r["kernel"])
    assert per_student["perfect"] == len(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_blank_student_scores_zero(graded, name):
    row, res = graded["rows"][("blank", name)], graded["results"][("blank", name)]
    assert row["status"] == "graded", _explain(res)
    assert float(row["score"]) == 0.0, _explain(res)


@pytest.mark.parametrize("name,exercise,tests", EXERCISES, ids=[f"{n}-{e}" for n, e, _ in EXERCISES])
def test_blank_exercise_loses_exactly_its_points(graded, name, exercise, tests):
    assert tests, f"{exercise} has no test cell (expected test_{exercise[3:]})"
    student, group = _blanked_with(name, exercise)
    nb = nbformat.read(str(SOLUTIONS / f"{name}.ipynb"), as_version=4)
    blank_tests = {t for ex, ts in synth.exercise_tests(nb).items() if ex in group for t in ts}
    assert set(tests) <= blank_tests
    res = graded["results"][(student, name)]
    assert res["status"] == "graded", _explain(res)
    for gid, mx in res["max_scores"].items():
        want = 0.0 if gid in blank_tests else mx
        assert res["scores"][gid] == want, f"{gid} (blank: {', '.join(group)}): {_explain(res)}"
    row = graded["rows"][(student, name)]
    lost = sum(res["max_scores"][t] for t in blank_tests)
    assert float(row["score"]) == pytest.approx(float(row["max_score"]) - lost)


def test_wrong_answers_lose_their_points(graded):
    tried = 0
    for name in NOTEBOOKS:
        key = ("wrong", name)
        if key not in graded["results"] or graded["results"][key]["status"] == "not submitted":
            continue
        res = graded["results"][key]
        assert res["status"] == "graded", _explain(res)
        nb = nbformat.read(str(SOLUTIONS / f"{name}.ipynb"), as_version=4)
        wrong_tests = {t for ex, ts in synth.exercise_tests(nb).items() if ex in WRONG for t in ts}
        for gid, mx in res["max_scores"].items():
            tried += gid in wrong_tests
            assert res["scores"][gid] == (0.0 if gid in wrong_tests else mx), f"{gid}: {_explain(res)}"
    if not tried:
        pytest.skip("none of the hand-written wrong answers matches an exercise of these notebooks")


def test_csv_has_one_row_per_student_and_notebook(graded):
    students = {s for s, _ in graded["rows"]}
    assert {"perfect", "blank"} <= students
    for s in students:
        for name in NOTEBOOKS:
            assert (s, name) in graded["rows"]
    for row in graded["rows"].values():
        assert set(row) == {"student_id", "notebook", "score", "max_score", "status", "reason"}
        src = nbformat.read(str(SOLUTIONS / f"{row['notebook']}.ipynb"), as_version=4)
        assert float(row["max_score"]) == sum(points_of(src).values())
