"""One harness for "each variant in its own child process" (bench_batching, bench_laptop, bench_methods).

Each variant is measured in a fresh process, one after the other, so each peak-memory figure
starts from a clean process (on a CPU the peak is the resident set size, which never goes back
down within a process).  The parent re-runs the script's own module,

    python -m scripts.NAME --child VARIANT [ARGS...] --json-out WORK/VARIANT.json

with PYTHONWARNINGS=ignore; the child writes its one JSON object to that file and the parent
reads it back.  The child's stdout and stderr reach the terminal as they are written; when it
fails, `VariantFailed` names the variant, the exit status and the tail of its stderr.

The child is found the way the parent was: `python -m scripts.NAME` from the repository root
(the working directory is inherited) or the installed `scripts` package.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

TAIL_BYTES = 4000  # of the child's stderr, quoted when it fails


class VariantFailed(RuntimeError):
    """A variant's child process failed: which variant, how, and the end of what it wrote to stderr."""

    def __init__(self, module: str, variant: str, returncode: int, stderr_tail: str):
        self.module, self.variant, self.returncode, self.stderr_tail = module, variant, returncode, stderr_tail
        super().__init__(f"variant {variant!r} of {module} failed (exit status {returncode}); "
                         f"the end of its stderr:\n{stderr_tail.rstrip() or '(nothing)'}")


def child_command(module: str, variant: str, json_out: Path, args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", module, "--child", variant, *args, "--json-out", str(json_out)]


def run_variant(module: str, variant: str, work: Path, args: Sequence[str] = ()) -> dict:
    """Run `python -m MODULE --child VARIANT ARGS --json-out WORK/VARIANT.json` and return its JSON.

    stderr is passed through byte for byte (progress bars included) and its tail kept for the error."""
    json_out = Path(work) / f"{variant}.json"
    json_out.unlink(missing_ok=True)  # a stale file from an earlier run is never read as this one's
    proc = subprocess.Popen(child_command(module, variant, json_out, args), stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    tail = b""
    out = getattr(sys.stderr, "buffer", None)
    while chunk := os.read(proc.stderr.fileno(), 65536):
        if out is not None:
            sys.stderr.flush()
            out.write(chunk)
            out.flush()
        else:  # a stderr without bytes (e.g. pytest's capture): write text
            sys.stderr.write(chunk.decode(errors="replace"))
        tail = (tail + chunk)[-TAIL_BYTES:]
    proc.stderr.close()
    returncode = proc.wait()
    text = tail.decode(errors="replace")
    if returncode != 0:
        raise VariantFailed(module, variant, returncode, text)
    try:
        return json.loads(json_out.read_text())
    except (OSError, ValueError) as err:
        raise VariantFailed(module, variant, returncode, f"{text}\n(no JSON from the child in {json_out}: {err})")


def run_variants(module: str, variants: Iterable[str], work: Path, args: Sequence[str] = (),
                 label: Callable[[str], str] = str) -> dict[str, dict]:
    """Each variant in its own child process, one after the other: {variant: its JSON}.

    Before each, prints `--- LABEL` (label(variant), the variant's name by default)."""
    results = {}
    for variant in variants:
        print(f"--- {label(variant)}", flush=True)
        results[variant] = run_variant(module, variant, work, args)
    return results
