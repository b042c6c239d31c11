"""The nbgrader course a step works in: config loading and the grading course directory.

Layout of a grading course directory (default ``build/grading/``, git-ignored)::

    source/week06/       copy of the repo's solutions/week06 (nbgrader source)
    release/week06/      student notebooks generated from it (nbgrader release)
    gradebook.db         the class gradebook (written only by the grade step, sequentially)
    gradebook.template.db  the empty gradebook right after generate_assignment
    submitted/<student>/week06/<notebook>.ipynb   placed by `collect`
    results/<student>/<notebook>.json             one result per graded notebook
    autograded/, feedback/   nbgrader's own directories
    work/                per-notebook sandboxes (one course copy each), deleted after use
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from . import ASSIGNMENT, CONFIG_FILE, SOLUTIONS_DIR

log = logging.getLogger("autograde")


def load_config(root: Path, source_dir: str = "source", release_dir: str = "release",
                **overrides) -> Config:
    """autograde/nbgrader_config.py with the course root moved to `root`."""
    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    cfg.CourseDirectory.root = str(Path(root).resolve())
    cfg.CourseDirectory.source_directory = source_dir
    cfg.CourseDirectory.release_directory = release_dir
    cfg.CourseDirectory.db_url = "sqlite:///" + str(Path(root).resolve() / "gradebook.db")
    cfg.CourseDirectory.assignment_id = ASSIGNMENT
    cfg.NbGraderApp.log_level = logging.WARNING if "log_level" not in overrides else overrides["log_level"]
    return cfg


def notebook_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.ipynb"))


def tree_digest(folder: Path) -> str:
    """Content hash of a folder (names + bytes), used to notice changes."""
    h = hashlib.sha256()
    folder = Path(folder)
    if folder.exists():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                h.update(str(p.relative_to(folder)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def generate_assignment(root: Path, solutions: Path = SOLUTIONS_DIR, source_dir: str = "source",
                        release_dir: str = "release") -> Path:
    """Copy `solutions` into root/<source_dir>/week06 and run nbgrader generate_assignment
    (student notebooks in root/<release_dir>/week06, assignment + notebooks in root/gradebook.db).
    Returns the release folder."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    root = Path(root).resolve()
    src = root / source_dir / ASSIGNMENT
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(solutions, src, ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__", "runs", "outputs"))
    rel = root / release_dir / ASSIGNMENT
    if rel.exists():
        shutil.rmtree(rel)
    db = root / "gradebook.db"
    if db.exists():
        db.unlink()
    cfg = load_config(root, source_dir, release_dir)
    coursedir = CourseDirectory(config=cfg)
    app = GenerateAssignment(coursedir=coursedir, config=cfg)
    app.force = True
    app.create_assignment = True
    app.start()
    if not rel.exists():
        raise RuntimeError(f"nbgrader generate_assignment produced nothing in {rel}")
    return rel


def prepare_course(course_dir: Path, solutions: Path = SOLUTIONS_DIR, force: bool = False) -> Path:
    """Make `course_dir` a grading course for `solutions` (idempotent: regenerated only when
    the solutions changed).  Returns course_dir."""
    course_dir = Path(course_dir).resolve()
    course_dir.mkdir(parents=True, exist_ok=True)
    stamp = course_dir / "course.json"
    digest = tree_digest(solutions)
    if not force and stamp.exists() and (course_dir / "gradebook.template.db").exists():
        info = json.loads(stamp.read_text())
        if info.get("solutions_digest") == digest and info.get("solutions") == str(Path(solutions).resolve()):
            return course_dir
    generate_assignment(course_dir, solutions)
    shutil.copy(course_dir / "gradebook.db", course_dir / "gradebook.template.db")
    stamp.write_text(json.dumps({"solutions": str(Path(solutions).resolve()),
                                 "solutions_digest": digest}, indent=1))
    return course_dir


def read_course(course_dir: Path) -> dict:
    info = json.loads((Path(course_dir) / "course.json").read_text())
    return info
