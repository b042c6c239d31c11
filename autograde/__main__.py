"""python -m autograde <step> [options]   (run from the repo root; see autograde/README.md)"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import DEFAULT_COURSE_DIR, MAX_ARCHIVE_MB, MAX_NOTEBOOK_MB, RELEASE_DIR, SOLUTIONS_DIR
from .limits import HOME_MB, INTERRUPT_GRACE_S, MAX_PROCESSES, SCRATCH_MB, TMP_MB


def _course_args(p):
    p.add_argument("--course-dir", type=Path, default=DEFAULT_COURSE_DIR,
                   help="grading work directory (default build/grading, git-ignored)")
    p.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR,
                   help="instructor notebooks (default solutions/week06)")
    p.add_argument("--max-notebook-mb", type=float, default=MAX_NOTEBOOK_MB,
                   help=f"a submitted file bigger than this (MiB) is never read: invalid notebook "
                        f"(default {MAX_NOTEBOOK_MB})")


def _archive_args(p):
    p.add_argument("--max-archive-mb", type=float, default=MAX_ARCHIVE_MB,
                   help=f"uncompressed total of a zip (or folder) that collect extracts, MiB "
                        f"(default {MAX_ARCHIVE_MB})")


def _grade_args(p):
    p.add_argument("--jobs", "-j", type=int, default=1, help="notebooks graded in parallel")
    p.add_argument("--timeout", type=float, default=600, help="wall-time bound per notebook, seconds")
    p.add_argument("--cell-timeout", type=float, default=300, help="bound per cell, seconds")
    p.add_argument("--memory-mb", type=int, default=6144,
                   help="memory bound per notebook, MiB: its processes and its /tmp and home (cgroup)")
    p.add_argument("--max-processes", type=int, default=MAX_PROCESSES,
                   help="processes and threads per notebook (cgroup pids.max)")
    p.add_argument("--tmp-mb", type=int, default=TMP_MB, help="size cap of a jail's /tmp and /dev/shm, MiB")
    p.add_argument("--home-mb", type=int, default=HOME_MB, help="size cap of a jail's home folder, MiB")
    p.add_argument("--scratch-mb", type=int, default=SCRATCH_MB,
                   help="size cap of a kernel's working folder, MiB")
    p.add_argument("--interrupt-grace", type=float, default=INTERRUPT_GRACE_S,
                   help="seconds a timed-out cell has to obey the interrupt before its kernel is stopped")
    p.add_argument("--student", action="append", default=None, help="grade only these students")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per notebook")
    p.add_argument("--keep-work", action="store_true", help="keep the per-notebook sandboxes")
    p.add_argument("--isolation", choices=("auto", "sandbox", "guard"), default="auto",
                   help="auto: the bubblewrap sandbox where it starts, else the fingerprint guard")
    p.add_argument("--kernels", choices=("auto", "forked", "fresh"), default="auto",
                   help="sandbox mode. forked: one jail per student, whose kernels fork from a zygote "
                        "that imported the libraries once; fresh: a jail and a fresh kernel per "
                        "notebook; auto (default): forked for students with two or more notebooks")


def _feedback_args(p):
    p.add_argument("--show-hidden-tests", action="store_true",
                   help="nbgrader's own feedback: test cells with their hidden code and full tracebacks")


def _repo_arg(value: str) -> str:
    from .publish import validate_repo

    try:
        return validate_repo(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograde", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="step", required=True)

    p = sub.add_parser("release", help="regenerate weeks/week06 from solutions/week06 and check it")
    p.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR)
    p.add_argument("--release", type=Path, default=RELEASE_DIR)
    p.add_argument("--update", action="store_true", help="write the generated notebooks")
    p.add_argument("--repo", type=_repo_arg, default=None, metavar="ORG/NAME",
                   help="publish from this GitHub repository: rewrite every Colab badge, setup cell and the "
                        "README/CONTRIBUTING links, set pyproject.toml's [tool.loraweek] repo, then --update")

    p = sub.add_parser("collect", help="place submissions (zip or folder) for grading")
    _course_args(p)
    p.add_argument("submissions", type=Path, help="an LMS zip or a folder of notebooks")
    p.add_argument("--clean", action="store_true", help="remove earlier submissions first")
    _archive_args(p)

    p = sub.add_parser("grade", help="autograde every collected submission, bounded")
    _course_args(p)
    _grade_args(p)

    p = sub.add_parser("feedback", help="one HTML feedback file per student and notebook")
    _course_args(p)
    _feedback_args(p)

    p = sub.add_parser("export", help="gradebook CSV and per-exercise summary")
    _course_args(p)
    p.add_argument("--csv", type=Path, default=None, help="default <course-dir>/grades.csv")

    p = sub.add_parser("all", help="collect, grade, feedback, export")
    _course_args(p)
    _grade_args(p)
    _feedback_args(p)
    p.add_argument("--submissions", type=Path, required=True)
    p.add_argument("--clean", action="store_true")
    _archive_args(p)
    p.add_argument("--csv", type=Path, default=None)

    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    if a.step == "release":
        from . import release
        return release.run(a.solutions, a.release, update=a.update, repo=a.repo)

    from .course import prepare_course
    prepare_course(a.course_dir, a.solutions)
    rc = 0
    if a.step in ("collect", "all"):
        from . import collect
        rc |= collect.run(a.course_dir, a.submissions, clean=a.clean,
                          max_notebook_mb=a.max_notebook_mb, max_archive_mb=a.max_archive_mb)
    if a.step in ("grade", "all"):
        from . import grade
        rc |= grade.run(a.course_dir, jobs=a.jobs, timeout=a.timeout, cell_timeout=a.cell_timeout,
                        memory_mb=a.memory_mb, students=a.student, keep_work=a.keep_work,
                        threads=a.threads, isolation=a.isolation, kernels=a.kernels,
                        max_processes=a.max_processes, tmp_mb=a.tmp_mb, home_mb=a.home_mb,
                        scratch_mb=a.scratch_mb, interrupt_grace=a.interrupt_grace,
                        max_notebook_mb=a.max_notebook_mb)
    if a.step in ("feedback", "all"):
        from . import feedback
        rc |= feedback.run(a.course_dir, show_hidden_tests=a.show_hidden_tests)
    if a.step in ("export", "all"):
        from . import export
        rc |= export.run(a.course_dir, csv_path=a.csv)
    return rc


if __name__ == "__main__":
    sys.exit(main())
