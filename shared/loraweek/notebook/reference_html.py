"""Executed notebooks as HTML: the published reference run a student compares their outputs with.

`python -m scripts.run_course --html` (`bash run.sh course --html`) writes one page per notebook under `<out>/html/<profile>/` and an
index saying which commit, profile, machine and run time each page comes from, so a page is never
mistaken for another profile's figures.
"""
from __future__ import annotations

import html
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter


def _commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def notebook_to_html(executed: Path, target: Path) -> Path:
    """Render one executed notebook (outputs kept) to a standalone HTML page."""
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def write_reference_pages(runs, html_dir: Path, profile: str, repo: Path) -> Path:
    """One page per run that produced a notebook, plus index.html; returns the index's path."""
    html_dir = Path(html_dir)
    rows = []
    for run in runs:
        if not Path(run.output).exists():
            rows.append((run.name, None, run.ok, run.seconds, run.error))
            continue
        page = notebook_to_html(Path(run.output), html_dir / f"{run.name}.html")
        rows.append((run.name, page.name, run.ok, run.seconds, run.error))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.processor() or platform.system()}, {_cpu_count()} CPU cores"
    items = "\n".join(
        f"<tr><td>{'<a href=%r>%s</a>' % (page, html.escape(name)) if page else html.escape(name)}</td>"
        f"<td>{'ok' if ok else 'FAILED: ' + html.escape(error.splitlines()[-1] if error else '')}</td>"
        f"<td>{seconds:.0f} s</td></tr>"
        for name, page, ok, seconds, error in rows)
    index = html_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>Week 6 reference run</title>"
        f"<h1>Week 6 reference run — profile <code>{html.escape(str(profile))}</code></h1>"
        f"<p>Commit {html.escape(_commit(repo))}, {html.escape(stamp)}, {html.escape(machine)}. "
        "Your figures will differ with the profile, the machine and the seed; the shapes, the "
        "messages and the order of magnitude should not.</p>"
        f"<table><tr><th>notebook</th><th>result</th><th>time</th></tr>{items}</table>\n",
        encoding="utf-8")
    return index


def _cpu_count() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
