"""The kernel side of the cell guard is a real module (autograde/cell_guard_kernel.py) that the
grader sends to the kernel as its source text (cell_guard.kernel_code): it compiles and imports
standalone without doing anything, the cell sent holds no leftover %-placeholder, the values it
carries are exactly the configured ones (however odd the paths), and once run in a real IPython
shell it guards: a replaced function is put back and reported, a read of a secret path is noted,
``os._exit`` raises, and none of its names is left in the notebook's namespace; a submission that
shadows the builtins the guard calls, or replaces a numpy function, is caught all the same."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))
from autograde import cell_guard  # noqa: E402

KERNEL = ROOT / "autograde" / "cell_guard_kernel.py"
FUNCTIONS = {"_lw_make_audit", "_lw_make_guard", "_lw_install"}
ODD = "odd ' \" ''' \\ %(token)s %s {x} \u2713 \U0001F600\nline"   # quotes, escapes, placeholders, non-BMP


def _installed_call(code: str) -> ast.Call:
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.func.id == "_lw_install"]
    assert len(calls) == 1, "the sent cell calls _lw_install exactly once"
    return calls[0]


def test_the_kernel_module_compiles_and_imports_standalone_without_effects():
    compile(KERNEL.read_text(encoding="utf-8"), str(KERNEL), "exec")
    # stdlib only, no site packages: what the module does at import is define its functions
    probe = ("import builtins, os, runpy, sys; meta, exit = list(sys.meta_path), os._exit; "
             f"ns = runpy.run_path({str(KERNEL)!r}); "
             "print(sorted(k for k in ns if not k.startswith('__'))); "
             "assert sys.meta_path == meta and os._exit is exit; "
             "assert not [k for k in dir(builtins) if k.startswith('_lw_guard_')]")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(ast.literal_eval(r.stdout.strip())) == FUNCTIONS


def test_the_sent_cell_carries_the_configured_values_and_no_placeholder():
    grading, scratch = str(ROOT / "build" / "grading"), str(ROOT / "build" / "scratch")   # carried, never opened
    plain = json.dumps({"secret": [grading], "scratch": [scratch]})
    assert "%(" not in cell_guard.kernel_code("0123abcd", plain)
    policy = json.dumps({"secret": [str(ROOT / "build" / ODD)], "scratch": [scratch]})
    code = cell_guard.kernel_code("0123abcd", policy)
    tree = ast.parse(code)
    compile(tree, "<guard>", "exec")
    # no docstring (it would become the notebook's __doc__) and no __future__ import (it would
    # carry over to the notebook's cells): the cell is the functions, the call, the del
    assert [type(n).__name__ for n in tree.body] == ["FunctionDef"] * 3 + ["Expr", "Delete"]
    assert {n.name for n in tree.body[:3]} == FUNCTIONS
    assert {t.id for t in tree.body[-1].targets} == FUNCTIONS
    (arg,) = _installed_call(code).args
    assert json.loads(ast.literal_eval(arg)) == {"token": "0123abcd", "policy": policy}


def test_the_guard_runs_in_an_ipython_shell(tmp_path):
    secret = tmp_path / ODD
    secret.mkdir()
    (secret / "answers.txt").write_text("hidden")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    policy = json.dumps({"secret": [str(secret)], "scratch": [str(scratch)]})
    script = f"""
import builtins, json, math, os, sys
sys.modules["torch"] = None   # the guard imports torch where it can: slow, and not needed here
from IPython.core.interactiveshell import InteractiveShell
from autograde.cell_guard import kernel_code

shell = InteractiveShell.instance()
doc = shell.user_ns.get("__doc__")
assert shell.run_cell(kernel_code("feed01", {policy!r}), silent=True, store_history=False).success
guard = getattr(builtins, "_lw_guard_feed01")
out = {{"left": sorted(k for k in shell.user_ns if k.startswith("_lw_")), "doc": shell.user_ns.get("__doc__") == doc}}
shell.run_cell("import math; math.sqrt = lambda x: 0.0; open(%r).read()" % sys.argv[1])
out["audit"] = json.loads(guard("audit"))
out["pre_test"] = json.loads(guard("pre_test", []))
out["sqrt"] = math.sqrt(4.0)
# a submission that shadows the builtins the guard calls, then replaces a numpy function (a
# dispatcher object, not a FunctionType): still put back and reported
shell.run_cell("any = lambda *a, **k: False\\nisinstance = lambda *a: False\\ngetattr = lambda *a: None\\n"
               "vars = lambda *a: {{}}\\nimport numpy, math\\nnumpy.mean = lambda *a, **k: 0.0\\n"
               "numpy.add = lambda *a, **k: 0.0\\nmath.sqrt = lambda x: 0.0")
out["pre_test_shadowed"] = json.loads(guard("pre_test", []))
import numpy
out["numpy"] = [float(numpy.mean([1.0, 3.0])), float(numpy.add(1.0, 2.0)), math.sqrt(9.0)]
try:
    os._exit(3)
except SystemExit as exc:
    out["exit"] = str(exc)
print("RESULT" + json.dumps(out))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "shared")]))
    r = subprocess.run([sys.executable, "-c", script, str(secret / "answers.txt")], capture_output=True, text=True, timeout=300,
                       cwd=scratch, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    assert out["left"] == [] and out["doc"], "the guard's functions (or its docstring) stay in the notebook"
    assert out["audit"] == ["tried to read " + os.path.realpath(secret / "answers.txt")]
    assert "math.sqrt replaced" in out["pre_test"] and out["sqrt"] == 2.0
    assert {"numpy.mean replaced", "numpy.add replaced", "math.sqrt replaced"} <= set(out["pre_test_shadowed"]), \
        out["pre_test_shadowed"]
    assert out["numpy"] == [2.0, 3.0, 3.0]
    assert out["exit"] == "os._exit(3) was called: blocked while autograding"


def test_every_builtin_the_kernel_code_calls_is_bound_before_the_notebook_can_shadow_it():
    import builtins

    tree = ast.parse(KERNEL.read_text(encoding="utf-8"))
    for maker in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "_lw_install"):
        bound = {t.id for node in maker.body if isinstance(node, ast.Assign) for target in node.targets
                 for t in ast.walk(target) if isinstance(t, ast.Name)}
        called = {n.id for n in ast.walk(maker) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                  and hasattr(builtins, n.id)}
        assert called <= bound, f"{maker.name} looks up {sorted(called - bound)} in the notebook's globals"
