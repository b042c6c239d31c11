"""How the suite shares the cores: the scheduler behind `--dist loadscope` (run.sh passes it).

xdist's own loadscope sends each module (or class) to one worker, in collection order.  Two
changes make it fit this suite, whose cost is a few long units (test_grading's class of graded
notebooks, Day 3's notebook, ...) among hundreds of short tests:

- **Units.** A unit is a whole test file, so a module fixture (test_grading's `graded`) is built
  once; the files in SPLIT_FILES share no costly fixture, so each of their tests is its own unit
  (each notebook of test_notebooks runs on whichever worker is free).
- **Order.** The longest unit goes first (longest-processing-time first), by what each test took
  in the recorded run (`tests/suite_durations.json`, written by `--record-durations`), so the run
  does not end with one worker idle while the other starts a 500-second notebook.  A test the
  record does not know counts as the record's mean test.  The record only orders the work: a
  stale one makes the run slower, never wrong.

Why not `--dist loadgroup` with `xdist_group` marks: with pytest 9.2 and pytest-xdist 3.8 the
marks are ignored (xdist writes the group into `item._nodeid`, which pytest 9 no longer reads),
so one group's tests spread over both workers (docs/MEASUREMENTS.md, 2026-12-03).

This module is a pytest plugin (tests/conftest.py loads it with `pytest_plugins`): its hooks add
`--record-durations` and hand xdist the scheduler.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

RECORD = "tests/suite_durations.json"   # under the rootdir (the checkout)

# files whose tests share no module fixture worth keeping on one worker
SPLIT_FILES = {"tests/test_notebooks.py"}


def record_path(config) -> Path:
    return Path(config.rootpath) / RECORD


def read_durations(path: Path) -> dict[str, float]:
    """nodeid -> seconds (set-up + call + tear-down); empty when there is no record."""
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}
    except (ValueError, AttributeError) as exc:   # stop, saying how to mend it: never a silent reorder
        raise SystemExit(f"{path}: not a JSON object of test id -> seconds ({exc}); delete it or "
                         "rewrite it with `bash run.sh test --record-durations`") from exc


def unit_of(nodeid: str) -> str:
    """The unit a test runs in: its file, or the test itself for a file in SPLIT_FILES."""
    path = nodeid.split("::", 1)[0]
    return nodeid if path in SPLIT_FILES else path


# ---------------------------------------------------------------- the plugin's hooks
def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true",
                     help=f"write what each test took to {RECORD}, which orders the parallel run's "
                          "work longest first (tests/suite_scheduling.py)")


def pytest_configure(config):
    if config.getoption("record_durations") and not hasattr(config, "workerinput"):  # the controller
        config.pluginmanager.register(DurationRecorder(record_path(config)), "duration-recorder")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return make_scheduler(config, log) if config.getvalue("dist") == "loadscope" else None


def make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirstScheduling(LoadScopeScheduling):
        """loadscope with unit_of's units, handed out longest first."""

        def __init__(self, config, log=None):
            super().__init__(config, log)
            self.seconds = read_durations(record_path(config))
            self.default = sum(self.seconds.values()) / len(self.seconds) if self.seconds else 1.0

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _cost(self, unit: str) -> float:
            return sum(self.seconds.get(n, self.default) for n in self.workqueue[unit])

        def _assign_work_unit(self, node) -> None:
            # the base class pops the queue's first unit: move the longest one there first
            longest = max(self.workqueue, key=self._cost)
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return LongestFirstScheduling(config, log)


class DurationRecorder:
    """`--record-durations`: what each test took, written to RECORD at the end of the run
    (by the controller only; xdist's workers report to it)."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session) -> None:
        if not self.seconds:
            return
        record = {k: round(v, 2) for k, v in sorted(self.seconds.items())}
        self.path.write_text(json.dumps(record, indent=0) + "\n")
        print(f"\nrecorded {len(record)} tests' durations ({sum(record.values()):.0f} s) in {self.path}")
