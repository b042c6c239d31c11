"""Old import paths, kept working for one release after the package was grouped by concept
(issue 23): a notebook saved before the move (``from loraweek.quiz import ...``,
``import loraweek.lora_layer``) still runs, and gets the very same module object as the new path,
so a reference function, a monkeypatch or an ``isinstance`` check means the same under both names.

One table instead of a file per old name at the package's root: `install()` (called by
``loraweek/__init__.py``) puts a finder on ``sys.meta_path`` that answers only for these names.
``python -m`` with an old name runs the new module too (runpy asks the loader for its code).
tests/test_moved_modules.py checks every row.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module (under loraweek.) -> where it lives now (under loraweek.)
MOVED = {
    "tiny_model": "models.tiny",
    "qwen_shape": "models.qwen_shape",
    "smollm2": "models.smollm2",
    "finetuned": "models.finetuned",
    "lora_layer": "lora.layer",
    "quantization": "lora.quantization",
    "memory_estimate": "lora.memory_estimate",
    "evaluation": "metrics.answers",
    "serve": "serving.__main__",
    "selfcheck": "notebook.selfcheck",
    "fallback": "notebook.fallback",
    "quiz": "notebook.quiz",
    "study": "notebook.study",
    "timings": "notebook.timings",
    "env": "notebook.env",
    "reference_html": "notebook.reference_html",
    "diagrams": "notebook.diagrams",
    "plots": "notebook.plots",
}
PACKAGE = "loraweek"


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module that now lives at `target` (the same object)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.target}; import it from there (the old name "
                      f"goes in a later release)", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        # Already executed under its new name; the import system has just set __spec__ to the
        # old name's (it always does), so put the module's own back: reload, pickle, runpy and
        # multiprocessing read it.
        module.__spec__ = self._spec

    def get_code(self, fullname):   # python -m <old name>
        return importlib.util.find_spec(self.target).loader.get_code(self.target)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        old = fullname.removeprefix(PACKAGE + ".")
        if fullname.startswith(PACKAGE + ".") and old in MOVED:
            target_name = f"{PACKAGE}.{MOVED[old]}"
            # origin: the new file, which runpy puts in sys.argv[0] for `python -m <old name>`
            origin = importlib.util.find_spec(target_name).origin
            return importlib.util.spec_from_loader(fullname, _Alias(target_name), origin=origin)
        return None


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
