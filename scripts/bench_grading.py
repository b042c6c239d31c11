"""Benchmark of the grading pipeline (ci profile, CPU only).

    python -m scripts.bench_grading                    # solutions/week06, class of 20
    python -m scripts.bench_grading --class-size 6 --notebook day2_qlora_finetuning

Run it from the repository root: it imports the grader (`autograde`, which is not an installed
package), so it has no installed entry point, unlike the other scripts.

Measures (1) the time to grade one student's whole week (every notebook, --jobs 1) and
(2) a class of N synthetic submitted notebooks (perfect, blank, one-exercise-blank variants,
spread over N / #notebooks students) graded with --jobs 1 and with --jobs 2, printed side by
side, and checks that both runs give every notebook the same score and status.  Each figure is
measured with three settings, side by side:

* ``current``: today's `loraweek.profiles.GRADING_SIZES`, kernels forked from one zygote per
  student (sandbox mode; kernel_zygote.py);
* ``fresh kernels``: the same sizes, a fresh kernel process per notebook (``--kernels fresh``,
  the grader before the zygote; --skip-fresh to skip);
* ``previous``: the sizes before issue 8 (PREVIOUS_SIZES, applied through a sitecustomize.py on
  PYTHONPATH) with fresh kernels (--skip-previous to skip).
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

from autograde import ASSIGNMENT, REPO_ROOT, SOLUTIONS_DIR, synth
from autograde.course import notebook_names, prepare_course


# GRADING_SIZES before issue 8 (the grading tests and the class took most of CI's time)
PREVIOUS_SIZES = dict(max_steps=4, train_examples=64, eval_examples=16, sweep_steps=2,
                      eval_every=2, save_every=2, score_examples=16)
SITECUSTOMIZE = """# set GRADING_SIZES when loraweek.profiles is first imported (not before: no torch import in
# every Python process of the run)
import json, sys
SIZES = json.loads({sizes!r})


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name != "loraweek.profiles":
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.GRADING_SIZES.clear()
            module.GRADING_SIZES.update(SIZES)
        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
"""


def _sizes_env(work: Path, previous: bool) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    if previous:
        d = work / "previous-sizes"
        d.mkdir(parents=True, exist_ok=True)
        (d / "sitecustomize.py").write_text(SITECUSTOMIZE.format(sizes=json.dumps(PREVIOUS_SIZES)))
        env["PYTHONPATH"] = str(d) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _grade(course: Path, solutions: Path, jobs: int, timeout: float, env: dict | None = None,
           fresh_kernels: bool = False) -> float:
    for d in ("results", "autograded", "feedback"):
        shutil.rmtree(course / d, ignore_errors=True)
    env = env or dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "autograde", "grade", "--course-dir", str(course),
                    "--solutions", str(solutions), "--jobs", str(jobs), "--timeout", str(timeout)]
                   + ["--kernels", "fresh" if fresh_kernels else "auto"],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def _results(course: Path) -> dict:
    return {(p.parent.name, p.stem): json.loads(p.read_text()) for p in (course / "results").glob("*/*.json")}


def _row(fig, settings):
    def row(label, fn, fmt="{:12.0f}"):
        print(f"{label:34}" + "".join(("    " + fmt.format(fn(fig[k]))) if fn(fig[k]) is not None else f"{'-':>16}"
                                      for k in settings))
    return row


def _print_week(fig, settings, names, skip_week) -> None:
    row = _row(fig, settings)
    print(f"\nGrading benchmark ({os.cpu_count()} CPU cores, ci profile at grading sizes, "
          f"notebooks: {', '.join(names)}; load average now {os.getloadavg()[0]:.1f})")
    print(f"{'':34}" + "".join(f"{k:>16}" for k in settings))
    if skip_week:
        return
    row("one student's week, --jobs 1 (s)", lambda f: f["week"])
    row("  of which shared caches (s)", lambda f: f["caches"])
    row("  of which zygote starts (s)", lambda f: f["zygote"], "{:12.1f}")
    for n in names:
        row(f"  {n} (s)", lambda f, n=n: f["week_nb"].get(n))
    # CPU seconds: what the week costs on an idle machine, however busy this one is
    row("  CPU of all sandboxes (s)", lambda f: sum(f["week_cpu"].values()))
    for n in names:
        row(f"  {n} CPU (s)", lambda f, n=n: f["week_cpu"].get(n))
    row("  perfect scores full marks", lambda f: "yes" if f["week_ok"] else "NO", "{:>12}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR)
    ap.add_argument("--notebook", action="append", help="only these notebooks")
    ap.add_argument("--class-size", type=int, default=20, help="submitted notebooks in the class")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "grading-bench")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--skip-week", action="store_true", help="skip the one-student measurement")
    ap.add_argument("--skip-previous", action="store_true", help="skip the previous sizes")
    ap.add_argument("--skip-fresh", action="store_true", help="skip the fresh-kernels column")
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
    # label -> (previous sizes?, fresh kernels?)
    SETTINGS = {"current": (False, False), "fresh kernels": (False, True), "previous": (True, True)}
    settings = [k for k in SETTINGS if not (k == "previous" and a.skip_previous)
                and not (k == "fresh kernels" and a.skip_fresh)]
    fig = {k: {} for k in settings}

    if not a.skip_week:
        week = prepare_course(a.work / "week", sol, force=True)
        shutil.rmtree(week / "submitted", ignore_errors=True)
        for n in names:
            s, r = week / "source" / ASSIGNMENT / f"{n}.ipynb", week / "release" / ASSIGNMENT / f"{n}.ipynb"
            synth.write(synth.perfect(s, r), week / "submitted" / "student" / ASSIGNMENT / f"{n}.ipynb")
        for k in settings:
            fig[k]["week"] = _grade(week, sol, 1, a.timeout, _sizes_env(a.work, SETTINGS[k][0]), SETTINGS[k][1])
            run = json.loads((week / "grading_run.json").read_text())
            fig[k]["caches"] = run["cache_s"]
            fig[k]["zygote"] = sum(run.get("zygote_start_s", [])) if run.get("zygote_start_s") else None
            fig[k]["week_nb"] = {key[1]: v["wall_s"] for key, v in _results(week).items()}
            fig[k]["week_cpu"] = {key[1]: v.get("cpu_s", 0.0) for key, v in _results(week).items()}
            fig[k]["week_ok"] = all(v["status"] == "graded" and v["score"] == v["max_score"]
                                    for v in _results(week).values())

    if a.class_size <= 0:   # the week only
        _print_week(fig, settings, names, a.skip_week)
        return 0 if all(fig[k].get("week_ok", True) for k in settings) else 1
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
    same = True
    for k in settings:
        for jobs in (1, 2):
            wall = _grade(cls, sol, jobs, a.timeout, _sizes_env(a.work, SETTINGS[k][0]), SETTINGS[k][1])
            res = _results(cls)
            fig[k][jobs] = {"wall": wall, "res": res,
                            "med": statistics.median([r["wall_s"] for r in res.values() if r["wall_s"]] or [0]),
                            "rss": max(r["peak_rss_mb"] for r in res.values())}
        r1, r2 = fig[k][1]["res"], fig[k][2]["res"]
        same &= all(r1[x]["scores"] == r2[x]["scores"] and r1[x]["status"] == r2[x]["status"] for x in r1)

    _print_week(fig, settings, names, a.skip_week)
    row = _row(fig, settings)
    n_sub = sum(1 for r in fig["current"][1]["res"].values() if r["status"] != "not submitted")
    print(f"class of {n_sub} submitted notebooks ({', '.join(cnames)}):")
    row("  --jobs 1 wall (s)", lambda f: f[1]["wall"])
    row("  --jobs 2 wall (s)", lambda f: f[2]["wall"])
    row("  --jobs 2 speed-up", lambda f: f[1]["wall"] / f[2]["wall"], "{:12.2f}")
    row("  per notebook, --jobs 2 (s)", lambda f: f[2]["wall"] / n_sub, "{:12.1f}")
    row("  median sandbox, --jobs 1 (s)", lambda f: f[1]["med"], "{:12.1f}")
    row("  median sandbox, --jobs 2 (s)", lambda f: f[2]["med"], "{:12.1f}")
    row("  peak RSS of one sandbox (MiB)", lambda f: f[2]["rss"])
    row("  CPU of all sandboxes (s)", lambda f: sum(r.get("cpu_s", 0.0) for r in f[1]["res"].values()))
    print(f"same scores and statuses with --jobs 1 and 2: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
