"""The grader's table of statuses (autograde/classify.py), one rule at a time, with no run at all:
an Outcome of plain values in, (status, reasons) out.  The slow grading tests check that real
runs produce these outcomes; these check what the row then says."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograde import CRASHED, GRADED, OUT_OF_MEMORY, TAMPERED, TIMED_OUT  # noqa: E402
from autograde.classify import Outcome, classify  # noqa: E402

CLEAN_SCORES = {"scores": {"t1": 2.0}, "notes": [], "timed_out": False, "out_of_memory": False,
                "timed_out_cells": [], "full_disk_cells": []}
BASE = Outcome(timeout=600, cell_timeout=300, memory_mb=2048, max_processes=256, tmp_mb=256, home_mb=64,
               scores=CLEAN_SCORES)


def scores(**kw) -> dict:
    return dict(CLEAN_SCORES, **kw)


CASES = [
    # (name, outcome, status, words every reason list must hold, in order)
    ("clean run", BASE, GRADED, []),
    ("notes only", replace(BASE, scores=scores(notes=["t2: test cell was not executed"])), GRADED,
     ["t2: test cell was not executed"]),
    ("notebook time limit", replace(BASE, timed_out=True, executed=False, scores=None), TIMED_OUT,
     ["ran longer than 600 s and was stopped"]),
    ("RSS watchdog", replace(BASE, out_of_memory=True, executed=False, scores=None), OUT_OF_MEMORY,
     ["used more than 2048 MiB"]),
    ("worker failed", replace(BASE, returncode=3, scores=None), CRASHED, ["exit code 3"]),
    ("kernel died, no notebook", replace(BASE, executed=False, kernel_died=True, scores=None), CRASHED,
     ["the kernel died while running the notebook"]),
    ("stuck past its interrupt", replace(BASE, stuck_at="ex_loop"), TIMED_OUT,
     ["ex_loop ran longer than 300 s and ignored the interrupt"]),
    ("kernel died in a cell", replace(BASE, died_at="cell 7"), CRASHED, ["while running cell 7 (killed, or a crash)"]),
    ("died at the process cap", replace(BASE, died_at="cell 7", pids_refused=4), OUT_OF_MEMORY,
     ["stopped at the process cap", "too many processes: the notebook reached its cap of 256"]),
    ("a cell interrupted", replace(BASE, scores=scores(timed_out=True, timed_out_cells=["ex_slow"])), TIMED_OUT,
     ["ex_slow: ran longer than 300 s and was interrupted"]),
    ("a cell's MemoryError", replace(BASE, scores=scores(out_of_memory=True)), OUT_OF_MEMORY,
     ["a cell ran out of memory (bound 2048 MiB)"]),
    ("/tmp filled up", replace(BASE, full_folders=(("/tmp", 256),)), OUT_OF_MEMORY, ["/tmp reached its"]),
    ("a refused write", replace(BASE, scores=scores(full_disk_cells=["cell 4"])), OUT_OF_MEMORY,
     ["cell 4: a write was refused"]),
    ("cgroup OOM killed the worker", replace(BASE, returncode=-9, oom_kills=2, bounded_by="cgroup memory",
                                             scores=None), OUT_OF_MEMORY,
     ["OOM killer stopped 2 process(es) (cgroup memory)"]),
    ("cgroup OOM during a graded run", replace(BASE, oom_kills=1, bounded_by="cgroup memory"), OUT_OF_MEMORY,
     ["OOM killer stopped 1 process(es)"]),
    ("a refused fork while graded", replace(BASE, pids_refused=1), OUT_OF_MEMORY, ["pids.max refused 1 fork(s)"]),
    ("the guard found a write", replace(BASE, findings=("wrote into the course",)), TAMPERED,
     ["wrote into the course"]),
    ("tampered and timed out", replace(BASE, submission_problems=("locked cell edited",), timed_out=True,
                                       scores=None), TAMPERED,
     ["locked cell edited", "ran longer than 600 s"]),
]


@pytest.mark.parametrize("outcome,status,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_of_the_table(outcome, status, words):
    got, reasons = classify(outcome)
    assert got == status, reasons
    text = "\n".join(reasons)
    positions = [text.find(w) for w in words]
    assert all(p >= 0 for p in positions), (words, reasons)
    assert positions == sorted(positions), f"reasons out of order: {reasons}"
    if status == GRADED and not words:
        assert reasons == []


def test_the_oom_killer_replaces_a_crash_reason_instead_of_adding_a_wrong_one():
    _, reasons = classify(replace(BASE, returncode=-9, oom_kills=1, scores=None))
    assert not any("exit code" in r for r in reasons) and len(reasons) == 1


def test_classify_is_pure():
    outcome = replace(BASE, findings=("x",), scores=scores(notes=["n"]))
    assert classify(outcome) == classify(outcome) and outcome.scores["notes"] == ["n"]
