"""Benchmark of the grading pipeline (ci profile, CPU only).

    python -m autograde.bench_grading                    # solutions/week06, class of 20
    python -m autograde.bench_grading --class-size 6 --notebook day2_qlora_finetuning

Measures (1) the time to grade one student's whole week (every notebook, --jobs 1) and
(2) a class of N synthetic submitted notebooks (perfect, blank, one-exercise-blank variants,
spread over N / #notebooks students) graded with --jobs 1 and with --jobs 2, printed side by
side, and checks that both runs give every notebook the same score and status.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from . import ASSIGNMENT, REPO_ROOT, SOLUTIONS_DIR
from . import synth
from .course import notebook_names, prepare_course


def _grade(course: Path, solutions: Path, jobs: int, timeout: float) -> float:
    for d in ("results", "autograded", "feedback"):
        shutil.rmtree(course / d, ignore_errors=True)
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "autograde", "grade", "--course-dir", str(course),
                    "--solutions", str(solutions), "--jobs", str(jobs), "--timeout", str(timeout)],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def _results(course: Path) -> dict:
    return {(p.parent.name, p.stem): json.loads(p.read_text()) for p in (course / "results").glob("*/*.json")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR)
    ap.add_argument("--notebook", action="append", help="only these notebooks")
    ap.add_argument("--class-size", type=int, default=20, help="submitted notebooks in the class")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "grading-bench")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--skip-week", action="store_true", help="skip the one-student measurement")
    ap.add_argument("--class-notebook", action="append",
                    help="build the class from these notebooks only (default: all of them)")
    a = ap.parse_args(argv)

    sol = a.solutions.resolve()
    if a.notebook:
        tmp = a.work / "solutions" / ASSIGNMENT
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for n in a.notebook:
            shutil.copy(sol / f"{n}.ipynb", tmp / f"{n}.ipynb")
        sol = tmp
    names = notebook_names(sol)
    figures = {}

    if not a.skip_week:
        week = prepare_course(a.work / "week", sol, force=True)
        shutil.rmtree(week / "submitted", ignore_errors=True)
        for n in names:
            s, r = week / "source" / ASSIGNMENT / f"{n}.ipynb", week / "release" / ASSIGNMENT / f"{n}.ipynb"
            synth.write(synth.perfect(s, r), week / "submitted" / "student" / ASSIGNMENT / f"{n}.ipynb")
        figures["week"] = _grade(week, sol, 1, a.timeout)
        figures["week_nb"] = {k[1]: v["wall_s"] for k, v in _results(week).items()}

    cls = prepare_course(a.work / "class", sol, force=True)
    shutil.rmtree(cls / "submitted", ignore_errors=True)
    variants = {}
    for n in names:
        s, r = cls / "source" / ASSIGNMENT / f"{n}.ipynb", cls / "release" / ASSIGNMENT / f"{n}.ipynb"
        vs = [synth.perfect(s, r), synth.blank(r)]
        vs += [synth.one_blank(s, r, ex) for ex in synth.solution_ids(nbformat.read(str(s), as_version=4))]
        variants[n] = vs
    cnames = [n for n in names if not a.class_notebook or n in a.class_notebook]
    for i in range(a.class_size):
        n = cnames[i % len(cnames)]
        student = f"s{i // len(cnames) + 1:03d}"
        nb = variants[n][(i // len(cnames)) % len(variants[n])]
        synth.write(nb, cls / "submitted" / student / ASSIGNMENT / f"{n}.ipynb")
    runs = {}
    for jobs in (1, 2):
        wall = _grade(cls, sol, jobs, a.timeout)
        res = _results(cls)
        runs[jobs] = {"wall": wall, "res": res}
    same = all(runs[1]["res"][k]["scores"] == runs[2]["res"][k]["scores"]
               and runs[1]["res"][k]["status"] == runs[2]["res"][k]["status"] for k in runs[1]["res"])

    print(f"\nGrading benchmark ({os.cpu_count()} CPU cores, ci profile, notebooks: {', '.join(names)})")
    if "week" in figures:
        per = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(figures["week_nb"].items()))
        print(f"one student's whole week (--jobs 1): {figures['week']:.0f} s  ({per})")
    n_sub = sum(1 for r in runs[1]["res"].values() if r["status"] != "not submitted")
    print(f"class of {n_sub} submitted notebooks ({', '.join(cnames)}):")
    print(f"{'':28}{'--jobs 1':>12}{'--jobs 2':>12}")
    print(f"{'wall time (s)':28}{runs[1]['wall']:12.0f}{runs[2]['wall']:12.0f}")
    print(f"{'per notebook, wall (s)':28}{runs[1]['wall'] / n_sub:12.1f}{runs[2]['wall'] / n_sub:12.1f}")
    for j in (1, 2):
        runs[j]["med"] = statistics.median(r["wall_s"] for r in runs[j]["res"].values() if r["wall_s"])
        runs[j]["rss"] = max(r["peak_rss_mb"] for r in runs[j]["res"].values())
    print(f"{'median sandbox time (s)':28}{runs[1]['med']:12.1f}{runs[2]['med']:12.1f}")
    print(f"{'peak RSS of one sandbox (MiB)':28}{runs[1]['rss']:12.0f}{runs[2]['rss']:12.0f}")
    print(f"{'speed-up':28}{1.0:12.2f}{runs[1]['wall'] / runs[2]['wall']:12.2f}")
    print(f"same scores and statuses in both runs: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
