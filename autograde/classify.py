"""classify: what a grading run left behind -> the row's status and its reasons.

`grade.grade_one` prepares a submission, runs it in its bounded worker and collects the
`Outcome` (plain values: the worker's counters, the guard's report, the scores of the executed
notebook); `classify` decides, without touching a file or a process, which status the row gets
and what it says.  One table of rules, read top to bottom (tests/test_classify.py checks each):

  the run                                   status              reasons (after the integrity ones)
  ran past the notebook's time limit        timed out           "ran longer than T s and was stopped"
  RSS watchdog killed it (no cgroup OOM)    out of memory       "used more than M MiB"
  worker failed / nothing executed          crashed             "the kernel died" or the exit code
  executed:                                 graded, unless
    a cell ignored its interrupt            timed out           where it was stuck
    the kernel died in a cell               crashed (out of memory at the process cap)
    a cell was interrupted                  timed out
    a cell ran out of memory                out of memory
    /tmp, home or its folder filled up      out of memory
    a write was refused (disk full)         out of memory
  the cgroup's OOM killer stopped something  crashed/graded -> out of memory, and it says so
  the process cap refused a fork             graded/timed out/crashed -> out of memory
  the integrity check or the guard found something   tampered (whatever else happened)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import CRASHED, GRADED, OUT_OF_MEMORY, TAMPERED, TIMED_OUT
from .limits import describe_mb


@dataclass(frozen=True)
class Outcome:
    """One grading run's facts.  `scores`: integrity.score_notebook's result when the worker left
    an executed notebook (None otherwise); `findings`: the guard's, plus any leak of hidden tests."""
    # the bounds of the run
    timeout: float
    cell_timeout: float
    memory_mb: int
    max_processes: int
    tmp_mb: float
    home_mb: float
    # the worker, as run_bounded saw it
    timed_out: bool = False
    out_of_memory: bool = False       # the RSS watchdog killed the tree
    oom_kills: int = 0                # the cgroup's OOM killer's count
    returncode: int | None = 0
    executed: bool = True             # an autograded notebook came back
    kernel_died: bool = False         # the worker's log says the kernel died
    bounded_by: str = ""
    pids_refused: int = 0
    full_folders: tuple[tuple[str, float], ...] = ()   # (name, cap MB) that filled up during the run
    # what was found
    submission_problems: tuple[str, ...] = ()   # integrity check: tampering with the notebook
    findings: tuple[str, ...] = ()
    stuck_at: str | None = None       # the guard: a cell that ignored its interrupt
    died_at: str | None = None        # the guard: the cell the kernel died in
    scores: dict | None = field(default=None)


def classify(o: Outcome) -> tuple[str, list[str]]:
    """(status, reasons) for the row; the reasons in the order a reader should meet them."""
    reasons = list(o.submission_problems) + list(o.findings)
    limit_hit = [f"out of memory: {name} reached its {describe_mb(cap)} cap" for name, cap in o.full_folders]
    if o.pids_refused:
        limit_hit.append(f"too many processes: the notebook reached its cap of {o.max_processes} "
                         f"processes and threads (pids.max refused {o.pids_refused} fork(s)); what its "
                         "kernel forked was stopped")
    if o.timed_out:
        status = TIMED_OUT
        reasons.append(f"the notebook ran longer than {o.timeout:g} s and was stopped")
    elif o.out_of_memory and not o.oom_kills:   # the RSS watchdog (no cgroup) killed the tree
        status = OUT_OF_MEMORY
        reasons.append(f"the notebook used more than {o.memory_mb} MiB and was stopped")
    elif o.returncode != 0 or not o.executed or o.scores is None:
        status = CRASHED
        reasons.append("the kernel died while running the notebook" if o.kernel_died else
                       f"nbgrader could not grade the notebook (exit code {o.returncode})")
    else:
        s = o.scores
        reasons += s["notes"]
        status = GRADED
        if o.stuck_at:
            status = TIMED_OUT
            reasons.append(f"{o.stuck_at} ran longer than {o.cell_timeout:g} s and ignored the interrupt: "
                           "the kernel was stopped there; the tests above it kept their points, the "
                           "cells below it were not run")
        elif o.died_at:
            status = OUT_OF_MEMORY if o.pids_refused else CRASHED
            reasons.append(f"the kernel died while running {o.died_at} "
                           f"({'stopped at the process cap' if o.pids_refused else 'killed, or a crash'}); "
                           "the tests above it kept their points, the cells below it were not run")
        elif s["timed_out"]:
            status = TIMED_OUT
            reasons.append(f"{', '.join(s['timed_out_cells'])}: ran longer than {o.cell_timeout:g} s and "
                           "was interrupted")
        elif s["out_of_memory"]:
            status = OUT_OF_MEMORY
            reasons.append(f"a cell ran out of memory (bound {o.memory_mb} MiB)")
        elif limit_hit:
            status = OUT_OF_MEMORY
        elif s["full_disk_cells"]:   # no capped mount to look at: the refused write says it
            status = OUT_OF_MEMORY
            reasons.append(f"out of memory: {', '.join(s['full_disk_cells'])}: a write was refused (no space "
                           f"left): /tmp, /dev/shm or the home reached its cap ({describe_mb(o.tmp_mb)}, "
                           f"{describe_mb(o.home_mb)})")
    if o.oom_kills:   # the cgroup's OOM killer ended a process: say so, not "crashed"
        oom = (f"out of memory: the notebook's processes and in-memory files (/tmp, home, /dev/shm) "
               f"passed {o.memory_mb} MiB and the kernel's OOM killer stopped {o.oom_kills} process(es) "
               f"({o.bounded_by})")
        if status == CRASHED and not o.died_at:
            reasons[-1] = oom
        else:
            reasons.append(oom)
        if status in (CRASHED, GRADED):
            status = OUT_OF_MEMORY
    reasons += limit_hit
    if o.pids_refused and status in (GRADED, TIMED_OUT, CRASHED):
        # the cause, whatever it did next (a kernel that cannot start a thread may hang until the
        # cell timeout stops it): the reason says both
        status = OUT_OF_MEMORY
    if o.submission_problems or o.findings:
        status = TAMPERED
    return status, reasons
