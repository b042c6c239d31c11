"""Instructor grading pipeline of week 6: ``python -m autograde <step>`` (see README.md).

Steps: release, collect, grade, feedback, export (and ``all`` = collect, grade, feedback,
export).  Everything is nbgrader underneath (autograde/nbgrader_config.py); this package adds
what nbgrader lacks: per-notebook process isolation with time and memory bounds, tamper
detection, Colab metadata stripping, attribution of LMS files, and a status per notebook.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# nbgrader's Gradebook shells out to `alembic`: make the venv's scripts findable even when the
# venv is not activated (python -m autograde run as .venv/bin/python).
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

# jsonschema (under nbformat) imports rfc3987-syntax where it is installed (jupyter-events pulls it
# in), and that compiles a Lark grammar for the "iri" string format at import time: 1.5 s in every
# grading process.  Notebook schemas never use that format, so the grader's processes go without it
# (an entry of None makes the import fail; jsonschema then skips that one format checker).
sys.modules.setdefault("rfc3987_syntax", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "week06"
COURSE_ID = "week06-lora"
CONFIG_FILE = Path(__file__).resolve().parent / "nbgrader_config.py"
DEFAULT_COURSE_DIR = REPO_ROOT / "build" / "grading"
SOLUTIONS_DIR = REPO_ROOT / "solutions" / ASSIGNMENT
RELEASE_DIR = REPO_ROOT / "weeks" / ASSIGNMENT

# size limits of collect and of reading a notebook, in MB = MiB (2**20 bytes), like --memory-mb:
# one submitted file (--max-notebook-mb; notebooks with many image outputs reach tens of MB)
# and the uncompressed total of one archive (--max-archive-mb; what collect may extract to disk)
MAX_NOTEBOOK_MB = 100
MAX_ARCHIVE_MB = 4096

# status column of the gradebook CSV
GRADED = "graded"
TIMED_OUT = "timed out"
OUT_OF_MEMORY = "out of memory"
INVALID = "invalid notebook"
TAMPERED = "tampered"
CRASHED = "crashed"
MISSING = "not submitted"
STATUSES = (GRADED, TIMED_OUT, OUT_OF_MEMORY, INVALID, TAMPERED, CRASHED, MISSING)
