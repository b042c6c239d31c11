"""feedback: one HTML feedback file per student and notebook, with nbgrader generate_feedback
(course_dir/feedback/<student>/week06/<notebook>.html).

By default the feedback never shows a hidden test: nbgrader renders the autograded notebook as
it ran, and its test cells hold the hidden tests verbatim, so one term's feedback would hand the
next term the tests.  nbgrader is therefore given a *student view* of each autograded notebook
(feedback_src/): every test cell shows the source the student was given (the visible checks),
its score, and, when it failed, the error's type and message -- not the traceback, whose
frames quote the hidden code.  ``--show-hidden-tests`` keeps nbgrader's behaviour.

The grade step leaves an executed notebook for *every* submitted notebook in autograded/ --
for one that crashed, timed out or could not be read, a stand-in that states the status and
the reason -- so every row of the gradebook gets its feedback.  Should nbgrader fail on one
notebook anyway, a plain HTML page with the status and the scores is written instead.
"""
from __future__ import annotations

import html
import logging
import shutil
import sys
import warnings
from pathlib import Path

import nbformat

from . import ASSIGNMENT, MISSING
from .integrity import graded_cells
from .course import load_config
from .grade import load_results

log = logging.getLogger("autograde.feedback")


def _fallback(r: dict, dest: Path) -> None:
    rows = "".join(f"<tr><td>{html.escape(g)}</td><td>{r['scores'].get(g, 0):g}</td><td>{m:g}</td></tr>"
                   for g, m in r["max_scores"].items())
    reasons = "".join(f"<li>{html.escape(x)}</li>" for x in r.get("reasons", []))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>{html.escape(r['notebook'])} feedback</title></head><body>
<h1>{html.escape(r['notebook'])} &mdash; {html.escape(r['student'])}</h1>
<p>Score: <b>{r.get('score', 0):g} / {r['max_score']:g}</b>. Status: <b>{html.escape(r['status'])}</b></p>
<ul>{reasons}</ul><table border="1"><tr><th>test</th><th>score</th><th>max</th></tr>{rows}</table>
</body></html>""", encoding="utf-8")


HIDDEN_NOTE = "# (the hidden tests of this cell run when grading; they are not shown)"


def student_view(nb, release_nb):
    """The autograded notebook `nb` with every test cell reduced to what the student was given
    (its released source) and every error of a test cell to its type and message."""
    released = {c.metadata.nbgrader["grade_id"]: c for c in graded_cells(release_nb)}
    for c in nb.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if c.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        ref = released.get(meta.get("grade_id"))
        visible = ref.source.rstrip() if ref is not None else ""
        c.source = (visible + "\n" if visible else "") + HIDDEN_NOTE
        for out in c.get("outputs", []):
            if out.get("output_type") == "error":
                msg = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".rstrip(": ")
                if out.get("ename") == "AssertionError" and not out.get("evalue"):
                    msg = "AssertionError: a check failed (no message)"
                out["traceback"] = [msg]
    return nb


def write_student_views(course_dir: Path, results: list[dict], folder: str = "feedback_src") -> None:
    """course_dir/<folder>/<student>/week06/<notebook>.ipynb for every autograded notebook."""
    dest_root = course_dir / folder
    shutil.rmtree(dest_root, ignore_errors=True)
    for r in results:
        src = course_dir / "autograded" / r["student"] / ASSIGNMENT / f"{r['notebook']}.ipynb"
        if not src.exists():
            continue
        rel = nbformat.read(str(course_dir / "release" / ASSIGNMENT / f"{r['notebook']}.ipynb"), as_version=4)
        dest = dest_root / r["student"] / ASSIGNMENT / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student_view(nbformat.read(str(src), as_version=4), rel), str(dest))


def run(course_dir: Path, show_hidden_tests: bool = False) -> int:
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    course_dir = Path(course_dir).resolve()
    results = [r for r in load_results(course_dir) if r["status"] != MISSING]
    if not results:
        print("feedback: no graded notebooks (run `grade` first)", file=sys.stderr)
        return 1
    cfg = load_config(course_dir)
    cfg.HTMLExporter.template_name = "feedback"
    if not show_hidden_tests:
        write_student_views(course_dir, results)
        cfg.CourseDirectory.autograded_directory = "feedback_src"
    for sid in sorted({r["student"] for r in results}):
        coursedir = CourseDirectory(config=cfg)
        coursedir.student_id = sid
        app = GenerateFeedback(coursedir=coursedir, config=cfg)
        app.force = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                app.start()
        except Exception as exc:  # one broken notebook must not stop the class
            log.warning("nbgrader generate_feedback failed for %s: %s", sid, exc)
    n_fallback = 0
    for r in results:
        dest = course_dir / "feedback" / r["student"] / ASSIGNMENT / f"{r['notebook']}.html"
        if not dest.exists():
            _fallback(r, dest)
            n_fallback += 1
    print(f"feedback: {len(results)} file(s) in {course_dir / 'feedback'}"
          + (f" ({n_fallback} plain page(s) where nbgrader could not render)" if n_fallback else ""))
    return 0
