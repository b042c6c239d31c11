"""The README's annotated tree (issue 23, item 8) names every module at the package's root, every
sub-package, and every module of data/, models/ and lora/: a module added without a line there is
a module a newcomer cannot find."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "shared" / "loraweek"


def _layout() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Layout\n.*?```\n(.*?)```", text, re.S)
    assert block, "README.md has no ## Layout section with a tree in a code block"
    return block.group(1)


def test_the_tree_names_every_root_module_and_sub_package():
    tree = _layout()
    words = set(re.findall(r"[\w.]+/?", tree))
    missing = [p.name for p in sorted(PACKAGE.glob("*.py")) if p.name != "__init__.py" and p.name not in words]
    missing += [p.name + "/" for p in sorted(PACKAGE.iterdir())
                if p.is_dir() and (p / "__init__.py").exists() and p.name + "/" not in words]
    for sub in ("data", "models", "lora"):
        missing += [f"{sub}/{p.name}" for p in sorted((PACKAGE / sub).glob("*.py"))
                    if p.name != "__init__.py" and p.name not in words]
    assert not missing, f"README.md's Layout tree lacks a line for: {', '.join(missing)}"


def test_the_three_files_to_read_first_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"\*\*Read these three files first\*\*:(.*?)\n\n", text, re.S).group(1)
    paths = re.findall(r"`([\w/.-]+\.(?:py|ipynb))`", first)
    assert len(paths) == 3 and all((ROOT / p).is_file() for p in paths), paths


def test_the_tree_names_the_graders_isolation_modes_and_guard():
    words = set(re.findall(r"[\w.]+/?", _layout()))
    grader = ROOT / "autograde"
    wanted = ["isolation/", "worker.py", "cell_guard.py", "cell_guard_kernel.py"]
    wanted += [p.name for p in sorted((grader / "isolation").glob("*.py")) if p.name != "__init__.py"]
    missing = [w for w in wanted if w not in words]
    assert not missing, f"README.md's Layout tree lacks autograde's: {', '.join(missing)}"
