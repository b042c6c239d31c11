"""The graded quiz that closes each day.

The student answers in one dict, in an nbgrader solution cell::

    QUIZ_ANSWERS = {"q1": "b", "q2": 0.42, ...}   # a letter, or a number where the question asks one

The visible self-check (`check_format`, inside `loraweek.notebook.selfcheck.self_check`) checks only the
*format*: every key a question of the quiz, a valid option letter, a real number.  The hidden
tests (`grade`) check the answers and return the points as the cell's value, so nbgrader gives
partial credit (its rule: a test cell whose result is a number scores that number): one point per
right answer, none for a wrong or missing one.  The right answer to a question about the run is
computed in the hidden test from the notebook's own variables, never typed, so it holds in every
profile and at the grading sizes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

WARNING = "⚠"


class QuizFormatError(ValueError):
    """QUIZ_ANSWERS is not in the form the quiz asks for (the message says what is wrong)."""


@dataclass(frozen=True)
class Choice:
    """A multiple-choice question: answer with one of `options`' letters."""
    options: str = "abcd"
    answer: str | None = None   # only the hidden test sets it
    points: float = 1.0

    def problem(self, value) -> str | None:
        if not isinstance(value, str) or value.strip().lower() not in self.options:
            return f"expected one letter of {', '.join(repr(o) for o in self.options)}, got {value!r}"
        return None

    def right(self, value) -> bool:
        return value.strip().lower() == self.answer.lower()

    def describe(self) -> str:
        return repr(self.answer)


@dataclass(frozen=True)
class Number:
    """A numeric question: right within `rel` (relative) or `abs` (absolute) of `answer`."""
    answer: float | None = None   # only the hidden test sets it
    rel: float = 0.05
    abs: float = 0.0
    points: float = 1.0

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"expected a number (an int or a float such as 0.25), got {value!r}"
        return None

    def right(self, value) -> bool:
        return math.isclose(float(value), float(self.answer), rel_tol=self.rel, abs_tol=self.abs)

    def describe(self) -> str:
        return f"{self.answer:.4g} (within {self.rel:.0%})" if not self.abs else f"{self.answer:.4g} ± {self.abs:g}"


def _problems(answers, questions: dict) -> tuple[list[str], list[str]]:
    """(format problems, unanswered question ids)."""
    if not isinstance(questions, dict) or not questions:
        raise TypeError("questions: expected a dict {question id: Choice(...) or Number(...)}")
    if not isinstance(answers, dict):
        raise QuizFormatError(f"QUIZ_ANSWERS: expected a dict such as {{'q1': 'a', ...}}, got {type(answers).__name__}")
    problems = [f"{key!r}: not a question of this quiz (questions: {', '.join(questions)})"
                for key in answers if key not in questions]
    unanswered = []
    for qid, question in questions.items():
        value = answers.get(qid)
        if value is None:
            unanswered.append(qid)
        elif (why := question.problem(value)) is not None:
            problems.append(f"{qid}: {why}")
    return problems, unanswered


def answered(answers):
    """`answers`, or None while nothing is answered (for `self_check("Quiz", QUIZ_ANSWERS=...)`)."""
    if answers is None or (isinstance(answers, dict) and all(v is None for v in answers.values())):
        return None
    return answers


def check_format(answers, questions: dict) -> str:
    """The visible check: raise QuizFormatError naming every badly formed answer; warn about the
    unanswered ones (they score 0); return (and print) the line that says the format is right."""
    problems, unanswered = _problems(answers, questions)
    if problems:
        raise QuizFormatError("QUIZ_ANSWERS: " + "; ".join(problems))
    if len(unanswered) == len(questions):
        raise QuizFormatError(f"QUIZ_ANSWERS: no question answered yet ({', '.join(questions)})")
    total = sum(q.points for q in questions.values())
    line = (f"Quiz: format check passed for {len(questions) - len(unanswered)} of {len(questions)} answers "
            f"(letters and numbers of the right kind); whether they are right is graded by hidden tests "
            f"({total:g} points, one per question).")
    if unanswered:
        line += f"\n{WARNING} not answered yet: {', '.join(unanswered)} (0 points each until you answer them)"
    print(line)
    return line


def grade(answers, key: dict) -> float:
    """The hidden test: points for the right answers (`key`: question id -> Choice/Number with
    `answer` set).  Prints one line per question (the feedback the student reads) and returns the
    total, which nbgrader takes as the cell's partial credit.  A badly formed quiz raises."""
    missing = [qid for qid, q in key.items() if q.answer is None]
    if missing:
        raise ValueError(f"key: no answer set for {', '.join(missing)}")
    problems, unanswered = _problems(answers, key)
    if problems:
        raise QuizFormatError("QUIZ_ANSWERS: " + "; ".join(problems))
    score = 0.0
    for qid, q in key.items():
        if qid in unanswered:
            print(f"{qid}: not answered (0/{q.points:g})")
        elif q.right(answers[qid]):
            score += q.points
            print(f"{qid}: right ({q.points:g}/{q.points:g})")
        else:
            print(f"{qid}: wrong, expected {q.describe()} (0/{q.points:g})")
    return score


def points(questions: dict) -> float:
    return float(sum(q.points for q in questions.values()))


def takeaways_markdown(rows) -> str:
    """A two-column Markdown table: key takeaways | Tóm tắt.  `rows`: 4 to 6 (English, Vietnamese)
    pairs, formatted by the notebook from its own variables."""
    rows = list(rows)
    if not 4 <= len(rows) <= 6 or any(not (isinstance(r, tuple) and len(r) == 2) for r in rows):
        raise ValueError("rows: expected 4 to 6 (English, Vietnamese) pairs")
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return "| Key takeaways | Tóm tắt |\n| --- | --- |\n" + "\n".join(f"| {cell(en)} | {cell(vi)} |" for en, vi in rows)


def show_takeaways(rows) -> None:
    """The day's key takeaways beside their Vietnamese summary (Tóm tắt): a Markdown table in
    Jupyter, plain text elsewhere."""
    rows = list(rows)
    text = takeaways_markdown(rows)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        display(Markdown(text))
    else:
        print("\n".join(f"* {en}\n  {vi}" for en, vi in rows))
