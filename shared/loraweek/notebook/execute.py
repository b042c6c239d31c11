"""Execute course notebooks with papermill and read what they report.

Each notebook runs in a fresh working folder of its own; its last cell prints `SUMMARY {json}`
(`loraweek.notebook.summary.print_summary`), which `read_summary` collects from the executed copy.
The course runner (`scripts/run_course.py`, behind `bash run.sh course`), the notebook tests and
`scripts/verify_course.py` all call `execute_notebook`, so CI and a newcomer run the same code.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loraweek.notebook.summary import PREFIX, headline_figures

@dataclass
class NotebookRun:
    name: str
    seconds: float
    ok: bool
    output: Path
    summary: dict = field(default_factory=dict)
    error: str = ""


def read_summary(nb) -> dict:
    """The JSON after 'SUMMARY ' in the notebook's stream outputs (the last one wins)."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                if line.startswith(PREFIX):
                    found = json.loads(line[len(PREFIX):])
    return found


def execute_notebook(path: Path, out_dir: Path, profile: str | None = None,
                     cell_timeout: int = 900, progress: bool = False,
                     parameters: dict | None = None) -> NotebookRun:
    """Execute one notebook with papermill in its own working folder under out_dir
    (`parameters`: papermill parameters besides PROFILE)."""
    import nbformat
    import papermill as pm

    out_dir = Path(out_dir)
    work = out_dir / path.stem
    # A fresh working folder: a previous run's checkpoints would make this one resume, and its
    # timings and scores would then describe that run, not this one.
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    output = out_dir / path.name
    params = {"PROFILE": profile} if profile else {}
    params.update(parameters or {})
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(str(path), str(output), parameters=params, cwd=str(work),
                            kernel_name="python3", execution_timeout=cell_timeout,
                            progress_bar=progress, log_output=False)
    except Exception as exc:  # papermill still writes the executed notebook with the error in it
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - t0
    summary = read_summary(nbformat.read(output, as_version=4)) if output.exists() else {}
    return NotebookRun(path.stem, seconds, not error, output, summary, error)


def execute_notebooks(paths: list[Path], out_dir: Path, jobs: int = 1, parameters: dict | None = None,
                      **kwargs) -> list[NotebookRun]:
    """`execute_notebook` for each of `paths` (the same keyword arguments; `parameters`: notebook
    name -> its papermill parameters), `jobs` at a time, each in a process of its own (papermill
    changes its process's working folder).  Results in the order of `paths`."""
    paths = [Path(p) for p in paths]
    parameters = parameters or {}
    if jobs <= 1 or len(paths) <= 1:
        return [execute_notebook(p, out_dir, parameters=parameters.get(p.stem), **kwargs) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(execute_notebook, p, out_dir, parameters=parameters.get(p.stem), **kwargs)
                   for p in paths]
        return [f.result() for f in futures]


def _is_score_table(value) -> bool:
    return (isinstance(value, dict) and bool(value) and all(isinstance(v, dict) and v for v in value.values())
            and all(isinstance(m, dict) and all(isinstance(x, (int, float)) for x in m.values())
                    for v in value.values() for m in v.values()))


def format_table(runs: list[NotebookRun]) -> str:
    lines = [f"{'notebook':<34} {'status':<7} {'time':>7}  key figures", "-" * 100]
    for r in runs:
        figures = headline_figures(r.summary)   # the notebook names its own (print_summary)
        text = ", ".join(f"{k}={v}" for k, v in figures.items())
        lines.append(f"{r.name:<34} {'ok' if r.ok else 'FAILED':<7} {r.seconds:6.0f}s  {text}")
        for key, value in r.summary.items():
            if _is_score_table(value):  # e.g. Day 2's before/after: {split: {model: {score: x}}}
                from loraweek.metrics.answers import score_table
                lines.append(f"{'':<4}{key}:")
                lines += [f"{'':<4}{line}" for line in score_table(value).splitlines()]
        if r.error:
            lines.append(f"{'':<34} {r.error[:200]}")
    return "\n".join(lines)
