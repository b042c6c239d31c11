"""Run every notebook of the week on a Qwen2.5-0.5B-shaped model under a T4's limits, and measure.

    # a GPU: the colab profile, fp16 forced (a T4 has no bf16), a 15 GiB memory cap (loraweek.hardware.T4_USABLE_GIB)
    python -m scripts.verify_course --profile colab
    python -m scripts.verify_course --profile gpu --memory-gb 0 --no-fp16   # bf16, no cap
    # a CPU: the plumbing only, with the shrunk shape (same vocabulary and tokenizer, tiny body)
    python -m scripts.verify_course --shrink --only day1 --only day2
    # a CPU profile at its own sizes: the laptop profile on SmolLM2, or on any model folder
    python -m scripts.verify_course --profile laptop
    python -m scripts.verify_course --profile laptop --model DIR --only day2

The CPU profiles (ci, laptop) run at their own sizes on their own model unless told otherwise;
a GPU profile asked for on a CPU runs the shrunk Qwen shape at grading sizes (its own sizes
would take hours there).

Per notebook it prints: wall time, peak GPU memory (allocated and reserved; peak resident memory
on a CPU), training tokens/s (the notebook's SUMMARY `tokens_per_s`), pass/fail.

How the limits reach the notebook: each notebook is executed (papermill, through
`loraweek.notebook.execute.execute_notebook`) from a copy with one extra first cell, `PREAMBLE` below.
Inside the kernel it caps the CUDA caching allocator with
`torch.cuda.set_per_process_memory_fraction(cap / total)` (an allocation past the cap raises
out-of-memory, as on a T4), makes `torch.cuda.is_bf16_supported()` answer False as a T4 does (so
`loraweek.profiles` picks fp16 compute and the Trainer fp16 mixed precision), and starts a thread
that samples the peak memory every 50 ms into a JSON file (the course's own `PeakMemory` resets
CUDA's peak counters, so the notebook-wide peak is sampled, not read once at the end).  The model
reaches every profile through `$LORAWEEK_MODEL` (read by `loraweek.profiles.get_profile`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from loraweek.notebook.execute import execute_notebook
from scripts.run_course import BUILD, course_notebooks
from loraweek.hardware import T4_USABLE_GIB
from loraweek.profiles import CPU_PROFILES, PROFILE_NAMES

STATS_ENV = "VERIFY_STATS_FILE"

PREAMBLE = '''# Added by scripts/verify_course.py (not part of the course): T4 limits + memory sampling.
import json as _json, os as _os, threading as _threading, time as _time
import psutil as _psutil, torch as _torch
_cap_gb = float(_os.environ.get("VERIFY_GPU_MEMORY_GB", "0"))
if _torch.cuda.is_available():
    if _cap_gb > 0:
        _total = _torch.cuda.get_device_properties(0).total_memory
        _torch.cuda.set_per_process_memory_fraction(min(1.0, _cap_gb * 1024**3 / _total))
    if _os.environ.get("VERIFY_FORCE_FP16") == "1":
        _torch.cuda.is_bf16_supported = lambda *args, **kwargs: False  # what a T4 answers

def _verify_sample(path=_os.environ["VERIFY_STATS_FILE"]):
    peak = {"gpu_allocated_mb": 0.0, "gpu_reserved_mb": 0.0, "rss_mb": 0.0}
    proc = _psutil.Process()
    while True:
        if _torch.cuda.is_available():
            peak["gpu_allocated_mb"] = max(peak["gpu_allocated_mb"], _torch.cuda.max_memory_allocated() / 2**20)
            peak["gpu_reserved_mb"] = max(peak["gpu_reserved_mb"], _torch.cuda.memory_reserved() / 2**20)
        peak["rss_mb"] = max(peak["rss_mb"], proc.memory_info().rss / 2**20)
        with open(path + ".tmp", "w") as f:
            _json.dump(dict(peak, bf16_supported=_torch.cuda.is_available() and _torch.cuda.is_bf16_supported()), f)
        _os.replace(path + ".tmp", path)
        _time.sleep(0.05)

_threading.Thread(target=_verify_sample, daemon=True).start()
'''


def with_preamble(notebook: Path, folder: Path) -> Path:
    """A copy of `notebook` in `folder` (same file name) with PREAMBLE as its first cell."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cell = nbformat.v4.new_code_cell(PREAMBLE)
    cell.metadata["tags"] = ["verify-preamble"]
    nb.cells.insert(0, cell)
    copy = folder / notebook.name
    nbformat.write(nb, copy)
    return copy


def model_folder(shrink: bool) -> Path:
    """The Qwen-shaped folder under build/verify/, built once."""
    from loraweek.models.qwen_shape import build_qwen_folder

    folder = BUILD / "verify" / ("qwen-shrunk" if shrink else "qwen2.5-0.5b-shape")
    if not (folder / "loraweek_shape.json").exists():
        print(f"building {folder.relative_to(BUILD.parent)} ...", flush=True)
        build_qwen_folder(folder, shrink=shrink)
    return folder


def tokens_per_s(summary: dict) -> float | None:
    found = [v for k, v in summary.items() if "tokens_per_s" in k and isinstance(v, (int, float))]
    return float(found[0]) if found else None


def format_rows(rows: list[dict], gpu: bool) -> str:
    mem = ("peak GPU alloc MB", "peak GPU reserved MB") if gpu else ("peak RSS MB",)
    head = f"{'notebook':<32} {'status':<7} {'wall s':>7} " + " ".join(f"{m:>20}" for m in mem) + f" {'train tok/s':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        vals = [r["gpu_allocated_mb"], r["gpu_reserved_mb"]] if gpu else [r["rss_mb"]]
        cells = " ".join(f"{v:>20,.0f}" if v is not None else f"{'n/a':>20}" for v in vals)
        tps = f"{r['tokens_per_s']:>12,.0f}" if r["tokens_per_s"] is not None else f"{'n/a':>12}"
        lines.append(f"{r['notebook']:<32} {r['status']:<7} {r['wall_s']:>7.0f} {cells} {tps}")
        if r["error"]:
            lines.append(f"{'':<32} {r['error'][:160]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="colab" if gpu else "ci", choices=PROFILE_NAMES,
                   help="ci / laptop / colab / gpu (default: colab on a GPU, else ci)")
    p.add_argument("--model", help="a model folder (default: the ci and laptop profiles' own model; for colab/gpu "
                                   "the Qwen-shaped one built under build/verify/)")
    p.add_argument("--shrink", action="store_true", help="build the shrunk shape (the default on a CPU)")
    p.add_argument("--memory-gb", type=float, default=T4_USABLE_GIB, help="GPU memory cap in GiB; 0 = none")
    p.add_argument("--no-fp16", action="store_true", help="do not force fp16 (bf16 where the GPU has it)")
    p.add_argument("--grading-sizes", action="store_true",
                   help="the smallest sizes (NBGRADER_EXECUTION is set: profile ci); the default for a GPU "
                        "profile run on a CPU")
    p.add_argument("--only", action="append", default=[], help="run notebooks whose name contains this (repeatable)")
    p.add_argument("--out", default=str(BUILD / "verify"))
    a = p.parse_args(argv)
    cpu_profile = a.profile in CPU_PROFILES  # runs on the CPU at its own sizes, on a GPU machine too
    shrink = a.shrink or (not gpu and not cpu_profile)
    grading = a.grading_sizes or (not gpu and not cpu_profile)
    if a.model:
        model = Path(a.model).resolve()
    elif cpu_profile and not a.shrink:  # the profile's own model: the ci toy or SmolLM2 (each built once)
        from loraweek.models import resolve_model_path
        from loraweek.profiles import get_profile
        model = Path(resolve_model_path(get_profile(a.profile).model_id))
    else:
        model = model_folder(shrink)
    if not (model / "config.json").exists():
        p.error(f"--model {model}: no config.json there (expected a model folder)")
    out = Path(a.out) / (a.profile + ("-grading" if grading else ""))
    own_model = cpu_profile and not a.model and not a.shrink
    if own_model:
        os.environ.pop("LORAWEEK_MODEL", None)  # the profile resolves its own model, as a student's run does
    else:
        os.environ["LORAWEEK_MODEL"] = str(model)
    os.environ.update(LORAWEEK_PROFILE=a.profile,
                      VERIFY_GPU_MEMORY_GB=str(a.memory_gb if gpu and not cpu_profile else 0),
                      VERIFY_FORCE_FP16="0" if a.no_fp16 or cpu_profile else "1")
    if grading:
        os.environ["NBGRADER_EXECUTION"] = "autograde"  # loraweek.profiles: ci at GRADING_SIZES
    shape = json.loads((model / "loraweek_shape.json").read_text()) if (model / "loraweek_shape.json").exists() else {}
    device = torch.cuda.get_device_name(0) if gpu else "CPU"
    print(f"device {device} | profile {a.profile}{' (grading sizes)' if grading else ''} | model {model} "
          f"({shape.get('shape', 'external')}, {shape.get('parameters', 0):,} parameters) | "
          + (f"cap {a.memory_gb:g} GiB | fp16 forced: {not a.no_fp16}" if gpu else "no GPU: no cap, fp32"), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in course_notebooks():
            if a.only and not any(o in nb.name for o in a.only):
                continue
            stats = Path(tmp) / f"{nb.stem}.stats.json"
            os.environ[STATS_ENV] = str(stats)
            print(f"running {nb.name} ...", flush=True)
            t0 = time.perf_counter()
            run = execute_notebook(with_preamble(nb, Path(tmp)), out, a.profile,
                                   cell_timeout=900 if a.profile == "ci" or grading else 3600)
            wall = time.perf_counter() - t0
            peak = json.loads(stats.read_text()) if stats.exists() else {}
            over = gpu and a.memory_gb > 0 and peak.get("gpu_reserved_mb", 0) > a.memory_gb * 1024
            rows.append(dict(notebook=nb.stem, status="ok" if run.ok and not over else "FAILED", wall_s=wall,
                             gpu_allocated_mb=peak.get("gpu_allocated_mb") if gpu else None,
                             gpu_reserved_mb=peak.get("gpu_reserved_mb") if gpu else None,
                             rss_mb=peak.get("rss_mb"), tokens_per_s=tokens_per_s(run.summary),
                             bf16_seen=peak.get("bf16_supported"), error=run.error or ("over the memory cap" if over else ""),
                             summary=run.summary))
            print(f"  {rows[-1]['status']} in {wall:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify.json").write_text(json.dumps(dict(device=device, profile=a.profile, grading_sizes=grading,
                                                     model=str(model), shape=shape, rows=rows), indent=1))
    print("\n" + format_rows(rows, gpu) + f"\n(results: {out / 'verify.json'})")
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
