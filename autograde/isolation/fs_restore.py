"""Fingerprint, compare and restore what a submission could change on disk.

Taken before a notebook runs and checked after it, in both isolation modes (in the sandbox it
is the proof that nothing changed; without one it is the guard that puts things back):

* byte snapshots, restored after any change: the grading folder (source, release, gradebooks,
  submissions), the course package, the model cache, the start-up folders of Python, IPython
  and Jupyter in the home folder, and the top-level files of the venv's site-packages
  (``.pth`` files, ``sitecustomize.py``: what every later Python process would run);
* names only (detected, not restored): the entries of site-packages, so a planted package shows.

A full snapshot of site-packages (65,000 files) would cost seconds per notebook; a change deep
inside an installed library is reported by the in-kernel audit hook instead (cell_guard_kernel.py).
"""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints"}
HOME_STARTUP = (".ipython", ".jupyter", ".config/ipython", ".config/jupyter")


def site_dirs() -> list[Path]:
    out = []
    for p in list(site.getsitepackages()) + [site.getusersitepackages()]:
        if p and os.path.isdir(p) and Path(p).resolve() not in out:
            out.append(Path(p).resolve())
    return out


def home_startup_dirs(home: Path | None = None) -> list[Path]:
    home = Path(home or Path.home())
    return [home / d for d in HOME_STARTUP] + [Path(site.getusersitepackages())]


class Snapshot:
    """Bytes of every file under `trees` (and of the `files`), names of the `listed` folders."""

    def __init__(self, trees: list[Path], listed: list[Path] = (), skip: list[Path] = (),
                 quiet_new: list[Path] = ()):
        self.trees = [Path(t) for t in trees]
        # where a notebook may legitimately *try* to add files (the model cache: Day 2 publishes
        # its adapter there when it can): new files are removed, but not reported
        self.quiet_new = [str(Path(q)) for q in quiet_new]
        self.listed = [Path(p) for p in listed]
        self.skip = [str(Path(s)) for s in skip]
        self.files = self._read()
        self.names = self._names()

    def _skipped(self, p: Path) -> bool:
        s = str(p)
        return bool(SKIP_PARTS & set(p.parts)) or any(s == k or s.startswith(k + os.sep) for k in self.skip)

    def _read(self) -> dict[Path, bytes]:
        out = {}
        for r in self.trees:
            if r.is_file():
                out[r] = r.read_bytes()
            elif r.is_dir():
                for dirpath, dirnames, filenames in os.walk(r):
                    d = Path(dirpath)
                    if self._skipped(d):
                        dirnames[:] = []
                        continue
                    for f in filenames:
                        p = d / f
                        if not p.is_symlink() and p.is_file():
                            try:
                                out[p] = p.read_bytes()
                            except OSError:
                                pass
        return out

    def _names(self) -> dict[Path, set[str]]:
        return {d: set(os.listdir(d)) if d.is_dir() else set() for d in self.listed}

    def check(self, restore: bool = True) -> list[str]:
        """Paths that changed since the snapshot; puts the snapshot back when `restore`."""
        now = self._read()
        quiet = lambda p: p not in self.files and any(str(p).startswith(q + os.sep) for q in self.quiet_new)
        changed = sorted({str(p) for p in set(now) | set(self.files)
                          if now.get(p) != self.files.get(p) and not quiet(p)})
        if restore:
            for p in set(now) - set(self.files):
                p.unlink(missing_ok=True)
                for d in p.parents:  # folders the notebook created, now empty
                    if not any(str(d).startswith(str(t)) for t in self.trees) or d in self.trees:
                        break
                    try:
                        d.rmdir()
                    except OSError:
                        break
            for p, data in self.files.items():
                if now.get(p) != data:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(data)
        for d, names in self._names().items():
            for n in sorted(names - self.names[d]):
                changed.append(f"{d / n} (added: remove it by hand)" if not restore or (d / n) not in self.files
                               else str(d / n))
            for n in sorted(self.names[d] - names):
                changed.append(f"{d / n} (deleted: reinstall it)")
        return sorted(set(changed))


def watched(course_dir: Path, sandboxed: bool) -> Snapshot:
    """The snapshot taken around every notebook of a grading run.

    In the sandbox the package, the venv, the cache and the home folder are read-only (or
    private) to a kernel, so only the grading folder is watched: a change elsewhere is someone
    else's (a colleague editing the package during the run), never to be "restored".  Without
    the sandbox everything a kernel could change is watched and put back -- so do not edit the
    course package or install packages while a guard-mode run is grading."""
    import loraweek
    from loraweek.cache import cache_root

    trees = [course_dir / "source", course_dir / "release", course_dir / "gradebook.template.db",
             course_dir / "gradebook.db", course_dir / "course.json", course_dir / "submitted"]
    if sandboxed:
        return Snapshot(trees)
    package = Path(loraweek.__file__).resolve().parent
    trees += [package, cache_root()] + home_startup_dirs()
    sp = site_dirs()
    for d in sp:  # the top-level files: .pth, sitecustomize.py, usercustomize.py, ...
        trees += [d / f for f in os.listdir(d) if (d / f).is_file()]
    # an adapter folder a notebook may legitimately *try* to publish is refused by the sandbox;
    # everything already in the cache is compared byte for byte
    return Snapshot(trees, listed=sp + [Path(sys.prefix) / "bin"], quiet_new=[cache_root()])
