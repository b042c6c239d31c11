"""Run the course: execute every notebook in solutions/ with papermill and summarise.

    bash run.sh course                                  # sets up .venv first, then runs this
    python -m scripts.run_course --profile ci --only day2
    python -m scripts.run_course --profile laptop --html   # also HTML pages of the executed notebooks

Executed notebooks land in build/course/ (git-ignored).  Each notebook's last cell prints
`SUMMARY {json}` and names its headline figures; the runner prints them in one table
(loraweek.notebook.execute), so it hard-codes none.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from loraweek.notebook.execute import execute_notebook, format_table

REPO = Path(__file__).resolve().parents[1]   # scripts/ sits at the top of a checkout of the course
SOLUTIONS = REPO / "solutions" / "week06"
BUILD = REPO / "build"


def course_notebooks(solutions: Path = SOLUTIONS) -> list[Path]:
    """The course's notebooks, in day order (their names start with dayN_)."""
    found = sorted(Path(solutions).glob("*.ipynb"))
    if not found:
        raise SystemExit(f"no notebooks in {solutions}: run from a checkout of the course, "
                         "or pass --solutions DIR (the folder of the day notebooks)")
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=os.environ.get("LORAWEEK_PROFILE"),
                   help="ci / laptop / colab / gpu (default: $LORAWEEK_PROFILE, else from the hardware)")
    p.add_argument("--cell-timeout", type=int, default=None,
                   help="seconds one cell may run (default 900 for ci; 3600 for the real models, whose "
                        "training cell runs for many minutes on a CPU)")
    p.add_argument("--only", default="", help="run only notebooks whose name contains this")
    p.add_argument("--solutions", default=str(SOLUTIONS), help="the folder of the notebooks to run")
    p.add_argument("--out", default=str(BUILD / "course"))
    p.add_argument("--html", action="store_true",
                   help="also write the executed notebooks as HTML pages with an index under OUT/html/PROFILE/ "
                        "(the reference run a student compares their outputs with)")
    a = p.parse_args(argv)
    notebooks = [nb for nb in course_notebooks(Path(a.solutions)) if a.only in nb.name]
    if not notebooks:
        raise SystemExit(f"--only {a.only!r} matches none of {[nb.name for nb in course_notebooks(Path(a.solutions))]}")
    runs = []
    for nb in notebooks:
        print(f"running {nb.relative_to(REPO) if nb.is_relative_to(REPO) else nb} ...", flush=True)
        timeout = a.cell_timeout or (900 if a.profile in (None, "ci") else 3600)
        runs.append(execute_notebook(nb, Path(a.out), a.profile, cell_timeout=timeout, progress=True))
        out = runs[-1].output
        print(f"  {'ok' if runs[-1].ok else 'FAILED'} in {runs[-1].seconds:.0f} s -> "
              f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}", flush=True)
    print("\nCourse summary\n" + format_table(runs))
    if a.html:
        from loraweek.notebook.reference_html import write_reference_pages
        from loraweek.profiles import get_profile

        profile_name = a.profile or get_profile().name
        index = write_reference_pages(runs, Path(a.out) / "html" / profile_name, profile_name, REPO)
        print(f"HTML reference pages: {index}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
