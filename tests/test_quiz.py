"""The end-of-day quizzes (loraweek.notebook.quiz), the diagrams (loraweek.notebook.diagrams) and the study-time
tables (loraweek.notebook.study).

Grading of the real notebooks is tests/test_grading.py's: every quiz is an exercise there like the
others (`ex_quiz` / `test_quiz`), so its one grading run already checks that the solution scores
full marks, a blank notebook 0, and a blank quiz loses only its own points.  Here: the helper's
errors, that each notebook's quiz is wired the same way (found by the grading machinery, points =
questions), and nbgrader's partial credit through the course's own scorer, on a tiny notebook.
"""
import json
import math
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from loraweek.notebook import quiz

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402
from autograde.integrity import score_notebook, test_cells as points_of  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions" / "week06").glob("*.ipynb"))
FORMAT = {"q1": quiz.Choice("abcd"), "q2": quiz.Number(), "q3": quiz.Choice("ab")}
KEY = {"q1": quiz.Choice("abcd", answer="c"), "q2": quiz.Number(answer=0.42, rel=0.05),
       "q3": quiz.Choice("ab", answer="a")}


@pytest.mark.parametrize("answers,match", [
    (["c", 0.4, "a"], "expected a dict"),
    ({"q1": "e", "q2": 0.4, "q3": "a"}, r"q1: expected one letter of 'a', 'b', 'c', 'd', got 'e'"),
    ({"q1": "c", "q2": "0.4", "q3": "a"}, r"q2: expected a number .* got '0.4'"),
    ({"q1": "c", "q2": True, "q3": "a"}, "q2: expected a number"),
    ({"q1": "c", "q2": math.nan, "q3": "a"}, "q2: expected a number"),
    ({"q1": "c", "q2": 0.4, "q3": "a", "q9": "b"}, r"'q9': not a question of this quiz \(questions: q1, q2, q3\)"),
    ({"q1": None, "q2": None, "q3": None}, "no question answered yet"),
])
def test_check_format_names_what_is_wrong(answers, match):
    with pytest.raises(quiz.QuizFormatError, match=match):
        quiz.check_format(answers, FORMAT)


def test_check_format_passes_and_warns_about_unanswered(capsys):
    line = quiz.check_format({"q1": " C ", "q2": 3, "q3": None}, FORMAT)
    assert "format check passed for 2 of 3" in line and "hidden tests" in line
    assert f"{quiz.WARNING} not answered yet: q3" in capsys.readouterr().out
    assert quiz.answered({"q1": None}) is None and quiz.answered(None) is None
    assert quiz.answered({"q1": "a"}) == {"q1": "a"}


def test_grade_gives_one_point_per_right_answer(capsys):
    assert quiz.grade({"q1": "c", "q2": 0.43, "q3": "a"}, KEY) == 3
    assert quiz.grade({"q1": "b", "q2": 0.43, "q3": None}, KEY) == 1
    out = capsys.readouterr().out
    assert "q1: wrong, expected 'c'" in out and "q3: not answered (0/1)" in out
    assert quiz.grade({"q1": "c", "q2": 0.5, "q3": "b"}, KEY) == 1     # 0.5 is 19 % off 0.42
    assert quiz.grade({"q2": 0.0}, {"q2": quiz.Number(answer=0.004, rel=0, abs=0.01)}) == 1
    with pytest.raises(quiz.QuizFormatError):
        quiz.grade({"q1": "z"}, KEY)
    with pytest.raises(ValueError, match="no answer set for q1"):
        quiz.grade({"q1": "a"}, {"q1": quiz.Choice("ab")})


def test_takeaways_need_four_to_six_english_vietnamese_pairs():
    rows = [(f"point {i}", f"ý {i}") for i in range(4)]
    text = quiz.takeaways_markdown(rows)
    assert text.startswith("| Key takeaways | Tóm tắt |") and "| point 3 | ý 3 |" in text
    with pytest.raises(ValueError, match="4 to 6"):
        quiz.takeaways_markdown(rows[:3])
    with pytest.raises(ValueError, match="pairs"):
        quiz.takeaways_markdown(["only English"] * 4)


def _cell(nb, gid):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid)


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_day_ends_with_takeaways_a_graded_quiz_and_reading(path):
    nb = nbformat.read(str(path), as_version=4)
    assert synth.exercise_tests(nb).get("ex_quiz") == ["test_quiz"], "the quiz is not an exercise of the grader"
    test = _cell(nb, "test_quiz").source
    visible, hidden = test.split("### BEGIN HIDDEN TESTS")
    fmt = eval(re.search(r"QUIZ_FORMAT = (\{.*\})", visible).group(1), {"quiz": quiz})   # noqa: S307 (our notebook)
    assert 4 <= len(fmt) <= 6
    assert points_of(nb)["test_quiz"] == quiz.points(fmt), "the cell's points must be one per question"
    assert "self_check(" in visible and "quiz.check_format(QUIZ_ANSWERS, QUIZ_FORMAT)" in visible
    assert set(re.findall(r'"(q\d)": _quiz\.', hidden)) == set(fmt), "the hidden key must grade every question"
    kinds = {q: type(v).__name__ for q, v in fmt.items()}
    for q, kind in re.findall(r'"(q\d)": _quiz\.(Choice|Number)', hidden):
        assert kinds[q] == kind, f"{q}: the visible format says {kinds[q]}, the key {kind}"
    assert "QUIZ_ANSWERS = None" in _cell(nb, "ex_quiz").source
    texts = [c.source for c in nb.cells]
    at = {name: next(i for i, t in enumerate(texts) if marker in t) for name, marker in
          (("takeaways", "show_takeaways(["), ("reading", "## Further reading"))}
    at["quiz"] = nb.cells.index(_cell(nb, "ex_quiz"))
    assert at["takeaways"] < at["quiz"] < at["reading"] < len(nb.cells) - 1
    assert "print_summary(" in texts[-1], "the SUMMARY cell (print_summary) must stay last"
    assert re.search(r"arXiv \d{4}\.\d{4,5}", texts[at["reading"]])


def test_study_time_tables_are_current():
    from loraweek.notebook import study

    stale = [p.name for p in SOLUTIONS if not study.current(json.loads(p.read_text(encoding="utf-8")))]
    assert not stale, f"stale study-time tables in {stale}: run python -m loraweek.notebook.study --update"


QUIZ_NB_CELLS = [
    ("code", {}, "from loraweek import quiz\nfrom loraweek.notebook.selfcheck import self_check\n"
                 "KEY = {'q1': quiz.Choice('abcd', answer='c'), 'q2': quiz.Number(answer=0.42), "
                 "'q3': quiz.Choice('ab', answer='a')}"),
    ("code", {"points": 3, "grade_id": "test_partial"},
     "A = {'q1': 'c', 'q2': 0.42, 'q3': 'b'}\nwith self_check('Quiz', QUIZ_ANSWERS=quiz.answered(A)):\n"
     "    quiz.check_format(A, KEY)\nquiz.grade(A, KEY)"),
    ("code", {"points": 3, "grade_id": "test_blank"},
     "A = None\nwith self_check('Quiz', QUIZ_ANSWERS=quiz.answered(A)):\n    quiz.check_format(A, KEY)\nquiz.grade(A, KEY)"),
    ("code", {"points": 3, "grade_id": "test_badformat"},
     "A = {'q1': 'z', 'q2': 0.42, 'q3': 'a'}\nwith self_check('Quiz', QUIZ_ANSWERS=quiz.answered(A)):\n"
     "    quiz.check_format(A, KEY)\nquiz.grade(A, KEY)"),
    ("code", {"points": 3, "grade_id": "test_full"},
     "A = {'q1': 'C', 'q2': 0.43, 'q3': 'a'}\nwith self_check('Quiz', QUIZ_ANSWERS=quiz.answered(A)):\n"
     "    quiz.check_format(A, KEY)\nquiz.grade(A, KEY)"),
]


def test_partial_credit_through_the_course_scorer(tmp_path, monkeypatch):
    """A quiz cell executed as the grader executes it (NBGRADER_EXECUTION set: nothing caught) and
    scored by autograde's score_notebook (nbgrader's own rule): points per right answer; a blank
    or badly formed quiz scores 0."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    for kind, meta, source in QUIZ_NB_CELLS:
        cell = nbformat.v4.new_code_cell(source)
        if meta:
            cell.metadata["nbgrader"] = dict(grade=True, solution=False, locked=True, schema_version=3, task=False, **meta)
        nb.cells.append(cell)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT / 'shared'}")
    NotebookClient(nb, timeout=60, allow_errors=True, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    scores = score_notebook(nb, {"test_partial": 3, "test_blank": 3, "test_badformat": 3, "test_full": 3})["scores"]
    assert scores == {"test_partial": 2.0, "test_blank": 0.0, "test_badformat": 0.0, "test_full": 3.0}


@pytest.mark.parametrize("name", ["lora_branch", "method_attachments", "request_path"])
def test_diagrams_draw_offline_and_fast(name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loraweek.notebook import diagrams

    diagrams.lora_branch()   # warm-up: the first figure pays for font loading
    t0 = time.process_time()   # CPU time: the suite's wall clock depends on what else runs on the cores
    fig = getattr(diagrams, name)()
    fig.canvas.draw()
    seconds = time.process_time() - t0
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
    assert seconds < 1.0, f"{name} took {seconds:.2f} s of CPU"
    want = {"lora_branch": ["W", "frozen", "A", "B", "alpha / r", "+"],
            "method_attachments": ["LoRA", "DoRA", "IA3", "prefix", "bottleneck", "self-attention", "MLP"],
            "request_path": ["client", "auth", "validation", "batching", "adapter", "structured", "response", "metrics"]}[name]
    missing = [w for w in want if w not in texts]
    assert not missing, f"{name}: no {missing} in the figure"


def test_lora_branch_shows_a_real_layer_s_sizes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loraweek.notebook import diagrams

    fig = diagrams.lora_branch(d=4096, k=1024, r=8, alpha=16)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
    assert "W  (4,096 × 1,024)" in texts and "A  (8 × 1,024)" in texts and "B  (4,096 × 8)" in texts
    assert "16 / 8 = 2" in texts
