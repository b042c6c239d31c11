"""collect: take submissions from an LMS zip or a folder, attribute each file to a student and
a notebook, strip Colab's personal metadata, and place them where nbgrader expects them
(course_dir/submitted/<student>/week06/<notebook>.ipynb).

Naming rule (first match wins; <notebook> is a notebook name of solutions/week06 without
.ipynb, e.g. day2_qlora_finetuning):

1. folder per student:  <student_id>/<notebook>.ipynb          (at any depth in the zip/folder)
2. one flat file:        <student_id>__<notebook>.ipynb   or   <student_id>_<notebook>.ipynb
3. LMS exports that prefix the original file name, e.g. Moodle's
   "<Full Name>_<student_id>_assignsubmission_file_<notebook>.ipynb" or Canvas'
   "<name>_<student_id>_<submission_id>_<notebook>.ipynb": the student id is the first token
   made only of digits.

Colab download names are understood: "Copy of <notebook>.ipynb", "<notebook> (1).ipynb",
"<notebook>-2.ipynb".  Student ids keep letters, digits, '.', '-' and '@' ('_' is the
separator).  Every file that cannot be attributed -- and every duplicate that was not kept --
is listed in course_dir/collect_report.json and copied to course_dir/unattributed/; nothing
is dropped silently.  A file named like a notebook but not valid JSON is placed anyway: the
grade step gives it the status "invalid notebook".
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from . import ASSIGNMENT
from .course import notebook_names

NB_METADATA_PERSONAL = ("colab", "accelerator", "gpuClass", "kaggle", "vscode", "widgets")
CELL_METADATA_PERSONAL = ("id", "colab", "outputId", "executionInfo", "colab_type", "pycharm",
                          "papermill", "execution")
ID_RE = re.compile(r"^[A-Za-z0-9.@-]+$")


def _clean_name(stem: str) -> str:
    s = re.sub(r"(^|_)(Copy of |Bản sao của )", r"\1", stem.strip(), flags=re.I)
    s = re.sub(r"\s*\(\d+\)$", "", s)
    s = re.sub(r"-\d+$", "", s)
    return s.strip()


def attribute(rel: Path, notebooks: list[str]) -> tuple[str, str] | None:
    """(student_id, notebook) for a file path relative to the submission root, or None."""
    if rel.suffix != ".ipynb":
        return None
    stem = _clean_name(rel.stem)
    # 1. <student>/<notebook>.ipynb (also nbgrader's <student>/week06/<notebook>.ipynb)
    if stem in notebooks and len(rel.parts) >= 2:
        parents = [p for p in rel.parts[:-1] if p not in (ASSIGNMENT, "submitted")]
        if parents and ID_RE.match(parents[-1]):
            return parents[-1], stem
    # 2./3. a flat name ending with the notebook name
    for nb in sorted(notebooks, key=len, reverse=True):
        if stem.endswith(nb) and len(stem) > len(nb):
            prefix = stem[: -len(nb)].rstrip("_ ")
            if not prefix:
                continue
            if ID_RE.match(prefix):
                return prefix, nb
            tokens = [t for t in re.split(r"[_\s]+", prefix) if t]
            digits = [t for t in tokens if t.isdigit()]
            if digits:                       # Moodle / Canvas exports
                return digits[0], nb
    return None


def strip_personal(data: dict) -> dict:
    """Remove Colab's personal metadata (user names, photos, cell ids) from a notebook dict."""
    meta = data.get("metadata")
    if isinstance(meta, dict):
        for k in NB_METADATA_PERSONAL:
            meta.pop(k, None)
    for cell in data.get("cells", []) if isinstance(data.get("cells"), list) else []:
        if not isinstance(cell, dict):
            continue
        cm = cell.get("metadata")
        if isinstance(cm, dict):
            for k in CELL_METADATA_PERSONAL:
                cm.pop(k, None)
        for out in cell.get("outputs", []) if isinstance(cell.get("outputs"), list) else []:
            if isinstance(out, dict) and isinstance(out.get("metadata"), dict):
                out["metadata"].pop("colab", None)
                out["metadata"].pop("executionInfo", None)
    return data


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = src.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        dest.write_bytes(raw)  # kept as is: graded as "invalid notebook"
        return
    if isinstance(data, dict):
        data = strip_personal(data)
    dest.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def run(course_dir: Path, submissions: Path, clean: bool = False) -> int:
    course_dir, submissions = Path(course_dir).resolve(), Path(submissions).resolve()
    notebooks = notebook_names(course_dir / "source" / ASSIGNMENT)
    if clean:
        for d in ("submitted", "unattributed", "results", "autograded", "feedback"):
            shutil.rmtree(course_dir / d, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="autograde-collect-") as tmp:
        if submissions.is_file() and zipfile.is_zipfile(submissions):
            root = Path(tmp) / "zip"
            with zipfile.ZipFile(submissions) as z:
                for info in z.infolist():
                    target = (root / info.filename).resolve()
                    if not str(target).startswith(str(root.resolve())):  # zip slip
                        continue
                    if not info.is_dir():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(z.read(info))
        elif submissions.is_dir():
            root = submissions
        else:
            print(f"collect: {submissions} is neither a zip file nor a folder", file=sys.stderr)
            return 1
        placed, unattributed, duplicates = {}, [], []
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = f.relative_to(root)
            if any(part.startswith(".") or part in ("__MACOSX", ".ipynb_checkpoints") for part in rel.parts):
                continue
            who = attribute(rel, notebooks)
            if who is None:
                unattributed.append(str(rel))
                dest = course_dir / "unattributed" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dest)
                continue
            if who in placed:  # the later file (by name: "(2)" after "(1)") wins; both reported
                duplicates.append({"student": who[0], "notebook": who[1], "kept": str(rel),
                                   "replaced": placed[who]})
                dest = course_dir / "unattributed" / "duplicates" / placed[who]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / placed[who], dest)
            placed[who] = str(rel)
            _place(f, course_dir / "submitted" / who[0] / ASSIGNMENT / f"{who[1]}.ipynb")
    report = {"source": str(submissions), "placed": {f"{s}/{n}": p for (s, n), p in sorted(placed.items())},
              "unattributed": unattributed, "duplicates": duplicates}
    (course_dir / "collect_report.json").write_text(json.dumps(report, indent=1))
    students = sorted({s for s, _ in placed})
    print(f"collect: {len(placed)} notebook(s) from {len(students)} student(s) -> {course_dir / 'submitted'}")
    for u in unattributed:
        print(f"collect: WARNING cannot attribute {u!r} (kept in {course_dir / 'unattributed'}; "
              f"rename it <student_id>__<notebook>.ipynb and collect again)", file=sys.stderr)
    for d in duplicates:
        print(f"collect: WARNING two files for {d['student']}/{d['notebook']}: kept {d['kept']!r}, "
              f"set aside {d['replaced']!r}", file=sys.stderr)
    return 0
