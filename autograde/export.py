"""export: the gradebook CSV (one row per student and notebook) and a per-exercise summary.

Scores are read from the class gradebook (nbgrader's database, rebuilt by `grade`); the
status and reason of each notebook come from results/<student>/<notebook>.json.
"""
from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path

from . import ASSIGNMENT, COURSE_ID, GRADED
from .grade import load_results

FIELDS = ["student_id", "notebook", "score", "max_score", "status", "reason"]


def rows(course_dir: Path) -> list[dict]:
    from nbgrader.api import Gradebook, MissingEntry

    course_dir = Path(course_dir).resolve()
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook("sqlite:///" + str(course_dir / "gradebook.db"), COURSE_ID) as gb:
            for r in load_results(course_dir):
                try:
                    nb = gb.find_submission_notebook(r["notebook"], ASSIGNMENT, r["student"])
                    score, max_score = nb.score, nb.max_score
                except MissingEntry:
                    score, max_score = 0.0, r["max_score"]
                out.append({"student_id": r["student"], "notebook": r["notebook"],
                            "score": round(float(score), 2), "max_score": float(max_score),
                            "status": r["status"], "reason": "; ".join(r.get("reasons", []))})
    return out


def exercise_summary(course_dir: Path) -> list[dict]:
    """Per test cell: mean score, max, how many students got full marks (of those submitted)."""
    stats: dict = {}
    for r in load_results(course_dir):
        if r["status"] == "not submitted":
            continue
        for gid, mx in r["max_scores"].items():
            s = stats.setdefault((r["notebook"], gid), {"notebook": r["notebook"], "exercise": gid,
                                                       "max": mx, "scores": []})
            s["scores"].append(r["scores"].get(gid, 0.0))
    out = []
    for s in stats.values():
        n = len(s["scores"])
        out.append({"notebook": s["notebook"], "exercise": s["exercise"], "max": s["max"],
                    "mean": sum(s["scores"]) / n if n else 0.0,
                    "full_marks": sum(x >= s["max"] for x in s["scores"]), "students": n})
    return out


def format_table(table: list[dict], cols: list[str]) -> str:
    cells = [[str(c) for c in cols]] + [[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c])
                                         for c in cols] for r in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(course_dir: Path, csv_path: Path | None = None) -> int:
    course_dir = Path(course_dir).resolve()
    csv_path = Path(csv_path or course_dir / "grades.csv")
    data = rows(course_dir)
    if not data:
        print("export: no results yet (run `grade` first)", file=sys.stderr)
        return 1
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(sorted(data, key=lambda r: (r["student_id"], r["notebook"])))
    summary = exercise_summary(course_dir)
    (csv_path.parent / (csv_path.stem + "_exercises.json")).write_text(json.dumps(summary, indent=1))
    print(f"export: {len(data)} row(s) -> {csv_path}")
    print(format_table(summary, ["notebook", "exercise", "max", "mean", "full_marks", "students"]))
    counts: dict = {}
    for r in data:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    run_info = course_dir / "grading_run.json"
    if run_info.exists():  # written by `grade`: which isolation mode graded these notebooks
        info = json.loads(run_info.read_text())
        print(f"isolation: {info['isolation']} ({info['why']})")
    print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: kv[0] != GRADED)))
    return 0
