"""Build a cached folder once, safely: the one mechanism behind the ci model, the course adapter
and the converted SmolLM2 under ``$LORAWEEK_CACHE``.

- an existing folder is returned untouched (it may be read-only: a grading sandbox);
- a file lock makes parallel processes (grading with --jobs N, pytest workers) wait for one build
  instead of each building its own, and re-checks after the wait;
- the build writes into a temporary folder beside the target that is renamed at the end, so a
  crash never leaves half a folder behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def cache_root() -> Path:
    """Where built models and adapters live: ``$LORAWEEK_CACHE``, default ``~/.cache/loraweek``.
    (Here, not in tiny_model, so that the grader finds it without importing torch.)"""
    return Path(os.environ.get("LORAWEEK_CACHE", Path.home() / ".cache" / "loraweek"))


@contextlib.contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock named after `target` (``.NAME.lock`` beside it): parallel processes
    that would fetch or build the same thing take turns."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_once(target: Path, is_built: Callable[[Path], bool], build: Callable[[Path], None],
               announce: str | None = None) -> Path:
    """Return `target`, first calling `build(folder)` to fill a fresh folder renamed to it if
    `is_built(target)` is false."""
    target = Path(target)
    if is_built(target):
        return target
    with file_lock(target):
        if is_built(target):  # built by another process while we waited
            return target
        if announce:
            print(announce)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
        try:
            build(tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
