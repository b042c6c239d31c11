"""The package grouped by concept (issue 23, item 1): every old module path still imports, as the
very same module object as its new path, for a release (loraweek/_moved.py), with a warning that
names the new one; and `python -m` with an old name still runs."""
from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
from loraweek import _moved  # noqa: E402

PACKAGE = ROOT / "shared" / "loraweek"


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED.items()))
def test_an_old_path_is_the_new_module(old, new):
    target = importlib.import_module(f"loraweek.{new}")
    sys.modules.pop(f"loraweek.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"loraweek.{old}")
    assert module is target
    assert any(f"loraweek.{new}" in str(w.message) and w.category is DeprecationWarning for w in caught)
    # the module keeps its own identity: spec and name are the new ones
    assert module.__spec__.name == module.__name__ == f"loraweek.{new}"
    assert not (PACKAGE / f"{old}.py").exists(), f"loraweek/{old}.py is back at the root: move it or drop its row"


def test_from_import_and_attribute_access_agree():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from loraweek import lora_layer
        import loraweek.quiz
    from loraweek.lora import layer
    from loraweek.notebook import quiz

    assert lora_layer is layer and loraweek.quiz is quiz
    assert lora_layer.lora_param_formula is layer.lora_param_formula


def test_the_finder_answers_only_for_its_rows():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("loraweek.no_such_module")
    assert _moved._MovedFinder().find_spec("other.quiz") is None


def test_python_dash_m_with_an_old_name_runs_the_new_module():
    r = subprocess.run([sys.executable, "-m", "loraweek.serve", "--help"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "shared"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--course-adapter" in r.stdout
