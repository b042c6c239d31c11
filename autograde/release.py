"""release: regenerate the student notebooks (weeks/week06) from solutions/week06 with nbgrader
generate_assignment in a temporary course, and fail if they differ from what is committed.

    python -m autograde release            # check: exit 1 and a diff summary on drift
    python -m autograde release --update   # write the generated notebooks into weeks/week06
    python -m autograde release --repo ORG/NAME   # publish from another GitHub repository, then --update

The check also fails when a published file (README.md, CONTRIBUTING.md, a notebook's badge or setup
cell) names another repository than pyproject.toml's [tool.loraweek] repo (autograde/publish.py).
"""
from __future__ import annotations

import difflib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from . import REPO_ROOT, RELEASE_DIR, SOLUTIONS_DIR, publish
from .course import generate_assignment

IGNORED = (".ipynb_checkpoints", "__pycache__")
# metadata that changes from machine to machine or run to run
VOLATILE_NB_METADATA = ("widgets", "colab", "accelerator", "gpuClass", "vscode", "papermill")
VOLATILE_LANGINFO = ("version", "pygments_lexer", "codemirror_mode")


def normalize(path: Path) -> dict:
    """What must match in a student notebook: cells (type, source, nbgrader metadata, tags,
    outputs) and the kernelspec -- not versions, widget state or execution counts."""
    nb = nbformat.read(str(path), as_version=4)
    meta = {k: v for k, v in nb.metadata.items() if k not in VOLATILE_NB_METADATA}
    if "language_info" in meta:
        meta["language_info"] = {k: v for k, v in meta["language_info"].items()
                                 if k not in VOLATILE_LANGINFO}
    cells = []
    for c in nb.cells:
        cells.append({
            "cell_type": c.cell_type,
            "source": c.source.rstrip(),
            "nbgrader": c.metadata.get("nbgrader", {}),
            "tags": sorted(c.metadata.get("tags", [])),
            "outputs": c.get("outputs", []),
        })
    return {"metadata": meta, "cells": cells}


def files(folder: Path) -> dict[str, Path]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part in IGNORED for part in p.parts)}


def _render(d: dict) -> list[str]:
    return json.dumps(d, indent=1, ensure_ascii=False, sort_keys=True).splitlines()


def compare(generated: Path, committed: Path) -> list[str]:
    """Human-readable differences (empty = identical)."""
    problems = []
    gen, com = files(generated), files(committed)
    for name in sorted(set(gen) - set(com)):
        problems.append(f"missing in {committed}: {name} (run `python -m autograde release --update`)")
    for name in sorted(set(com) - set(gen)):
        problems.append(f"not generated from solutions (hand-made or stale): {committed / name}")
    for name in sorted(set(gen) & set(com)):
        if name.endswith(".ipynb"):
            try:
                a, b = normalize(gen[name]), normalize(com[name])
            except Exception as exc:  # unreadable committed notebook
                problems.append(f"{committed / name}: cannot be read ({exc})")
                continue
            if a != b:
                diff = list(difflib.unified_diff(_render(b), _render(a), "committed", "generated",
                                                 lineterm="", n=1))
                problems.append(f"{committed / name} differs from what nbgrader generates:\n  "
                                + "\n  ".join(diff[:40]) + ("\n  ..." if len(diff) > 40 else ""))
        elif gen[name].read_bytes() != com[name].read_bytes():
            problems.append(f"{committed / name} differs from {SOLUTIONS_DIR.name}/{name}")
    return problems


def run(solutions: Path = SOLUTIONS_DIR, release: Path = RELEASE_DIR, update: bool = False,
        repo: str | None = None, root: Path = REPO_ROOT) -> int:
    """Check (or with `update`, write) `release` against what nbgrader generates from `solutions`.
    `repo` (ORG/NAME): first point every published file of `root` at that repository (implies
    `update`).  The check of the course's own solutions folder also checks the published files."""
    solutions, release, root = Path(solutions).resolve(), Path(release).resolve(), Path(root).resolve()
    own = solutions == (root / "solutions" / SOLUTIONS_DIR.name).resolve()
    check_published = bool(repo) or (own and not update)   # --update alone writes, as it always did
    if repo:
        old = publish.configured_repo(root)
        changed = publish.set_repo(repo, root, also=() if own else sorted(solutions.glob("*.ipynb")))
        print(f"release: {old} -> {repo}: rewrote {len(changed)} file(s)"
              + "".join(f"\n  {p.relative_to(root) if p.is_relative_to(root) else p}" for p in changed))
        update = True
    if not list(solutions.glob("*.ipynb")):
        print(f"release: no notebooks in {solutions}", file=sys.stderr)
        return 1 if files(release) else 0
    with tempfile.TemporaryDirectory(prefix="autograde-release-") as tmp:
        generated = generate_assignment(Path(tmp), solutions)
        if update:
            release.mkdir(parents=True, exist_ok=True)
            for name, path in files(release).items():
                if name not in files(generated):
                    path.unlink()
                    print(f"release: removed stale {path}")
            for name, path in files(generated).items():
                dest = release / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest)
            print(f"release: wrote {len(files(generated))} file(s) into {release}")
            problems = []
        else:
            problems = compare(generated, release)
    if problems:
        print("release: the student notebooks drifted from solutions/:", file=sys.stderr)
        for p in problems:
            print(" - " + p, file=sys.stderr)
        return 1
    published = publish.problems(root, solutions) if check_published else []
    if published:
        print(f"release: the published files disagree with {publish.PYPROJECT}'s repository:", file=sys.stderr)
        for p in published:
            print(" - " + p, file=sys.stderr)
        return 1
    if update:
        return 0
    print(f"release: {release} is exactly what nbgrader generates from {solutions}")
    return 0
