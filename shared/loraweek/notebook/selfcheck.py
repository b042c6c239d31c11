"""Visible self-checks that let Run-all go on past a blank exercise.

A visible-check cell wraps its asserts in `self_check`::

    from loraweek.notebook.selfcheck import self_check
    with self_check("Exercise ②"):
        assert mask_labels(...) == ..., "what is wrong"
        print("mask_labels: visible checks passed")

* an exercise not attempted yet -- its code still raises ``NotImplementedError``, or a value it
  asks for is still ``None`` (``self_check("Exercise ③", LORA_R=LORA_R)``) -- prints one line
  instead of stopping the notebook, so Run-all reaches the cells below, which use the course's
  reference answer meanwhile (`loraweek.notebook.fallback.student_or_reference`);
* a wrong answer still fails loudly: its AssertionError (or any other error) is raised as usual;
* grading is unchanged: under nbgrader (``NBGRADER_EXECUTION`` set: autograde, validate) nothing is
  caught, and the hidden tests below the visible checks fail a blank exercise as before.

`your_answer` does the same for an answer written at the top level of a cell (not inside a
function), whose blank form, nbgrader's ``raise NotImplementedError()``, would stop Run-all there.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

WARNING = "⚠"


def grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def _raiser(tb) -> str:
    """Name of the function that raised (the innermost frame of the traceback), or ''."""
    name = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        tb = tb.tb_next
    return "" if name == "<module>" else name


def not_attempted_line(exercise: str, detail: str = "") -> str:
    detail = f" ({detail})" if detail else ""
    return f"{WARNING} {exercise} not attempted yet{detail} — the cells below use the course's reference answer"


def _unset(values: dict) -> list[str]:
    return [name for name, value in values.items() if value is None]


@contextmanager
def self_check(exercise: str, **values):
    """Run a visible self-check; see the module docstring.

    `values`: answers the exercise asks you to set (name=value); any still None means the exercise
    is not attempted yet, so the check's failure is reported in one line instead of raised."""
    unset = _unset(values)
    try:
        yield
    except NotImplementedError as err:
        if grading():
            raise
        where = _raiser(err.__traceback__)
        print(not_attempted_line(exercise, f"{where} raises NotImplementedError" if where else ""))
    except Exception:
        if grading() or not unset:
            raise   # a wrong answer: fail loudly, with the check's own message
        print(not_attempted_line(exercise, f"{', '.join(unset)} still None"))


@contextmanager
def your_answer():
    """Around an answer written at the top level of a cell: a blank answer (``raise
    NotImplementedError()``) is skipped quietly, so the rest of the cell and Run-all go on; the
    self-check below it says the exercise is not attempted yet.  Nothing is caught while grading."""
    try:
        yield
    except NotImplementedError:
        if grading():
            raise
