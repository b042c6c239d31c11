"""feedback: one HTML feedback file per student and notebook, with nbgrader generate_feedback
(course_dir/feedback/<student>/week06/<notebook>.html).

The grade step leaves an executed notebook for *every* submitted notebook in autograded/ --
for one that crashed, timed out or could not be read, a stand-in that states the status and
the reason -- so every row of the gradebook gets its feedback.  Should nbgrader fail on one
notebook anyway, a plain HTML page with the status and the scores is written instead.
"""
from __future__ import annotations

import html
import logging
import sys
import warnings
from pathlib import Path

from . import ASSIGNMENT, MISSING
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


def run(course_dir: Path) -> int:
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    course_dir = Path(course_dir).resolve()
    results = [r for r in load_results(course_dir) if r["status"] != MISSING]
    if not results:
        print("feedback: no graded notebooks (run `grade` first)", file=sys.stderr)
        return 1
    cfg = load_config(course_dir)
    cfg.HTMLExporter.template_name = "feedback"
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
