"""The scripts apart from the library (issue 23, item 3): scripts/ is a package run as
`python -m scripts.NAME` from the repository root or through its installed entry points, never by
editing sys.path; each variant's child process goes through one harness (scripts/_variants.py)."""
from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
NO_ENTRY_POINT = {"bench_grading"}  # imports autograde, not an installed package: python -m scripts.bench_grading


def _has_main(path: Path) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(path.read_text()).body)


MODULES = sorted(p.stem for p in SCRIPTS.glob("*.py") if _has_main(p))


def _entry_points() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _env() -> dict:
    paths = [str(ROOT / "shared"), str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), HF_HUB_OFFLINE="1")


def test_no_script_edits_sys_path():
    offenders = [p.name for p in sorted(SCRIPTS.glob("*.py")) if "sys.path" in p.read_text()]
    assert not offenders, f"scripts that edit sys.path (run them with python -m scripts.NAME instead): {offenders}"


def test_every_script_has_a_main_guard():
    assert "bench_laptop" in MODULES and "bench_grading" in MODULES, MODULES
    for name in MODULES:
        assert 'if __name__ == "__main__":' in (SCRIPTS / f"{name}.py").read_text(), name


def test_every_script_with_a_main_has_an_entry_point():
    targets = {v.split(":")[0] for v in _entry_points().values()}
    missing = [m for m in MODULES if f"scripts.{m}" not in targets and m not in NO_ENTRY_POINT]
    assert not missing, f"scripts with a main() but no [project.scripts] entry point: {missing}"
    assert not any(f"scripts.{m}" in targets for m in NO_ENTRY_POINT)  # they would fail where installed


@pytest.mark.parametrize("name,target", sorted(_entry_points().items()))
def test_entry_point_target_resolves(name, target):
    module, _, attr = target.partition(":")
    assert name.startswith("loraweek-") and module.startswith("scripts."), (name, target)
    assert callable(getattr(importlib.import_module(module), attr))


def test_package_discovery_finds_loraweek_and_scripts():
    from setuptools.config import expand

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    package_dir = {}
    found = expand.find_packages(**find, root_dir=str(ROOT), fill_package_dir=package_dir)
    assert {"loraweek", "loraweek.models", "scripts"} <= set(found), found
    assert package_dir.get("loraweek") == "shared/loraweek" and not any(p.startswith(("tests", "autograde")) for p in found)


@pytest.mark.parametrize("name", MODULES)
def test_help_runs_as_a_module_from_the_root(name):
    done = subprocess.run([sys.executable, "-m", f"scripts.{name}", "--help"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage:" in done.stdout


CHILD = textwrap.dedent('''
    import argparse, json, sys
    from pathlib import Path

    def main(argv=None):
        p = argparse.ArgumentParser()
        p.add_argument("--child")
        p.add_argument("--json-out")
        p.add_argument("--scale", type=int, default=1)
        a = p.parse_args(argv)
        if a.child == "broken":
            print("about to fail", file=sys.stderr)
            raise SystemExit("the broken variant's own message")
        if a.child == "silent":
            return
        Path(a.json_out).write_text(json.dumps({"variant": a.child, "value": len(a.child) * a.scale}))

    if __name__ == "__main__":
        main()
''')


@pytest.fixture
def child_module(tmp_path, monkeypatch):
    (tmp_path / "fake_bench_child.py").write_text(CHILD)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "fake_bench_child"


def test_run_variants_reads_each_childs_json(child_module, tmp_path, capsys):
    from scripts._variants import run_variants

    rows = run_variants(child_module, ["ab", "abc"], tmp_path, ["--scale", "10"])
    assert rows == {"ab": {"variant": "ab", "value": 20}, "abc": {"variant": "abc", "value": 30}}
    assert "--- ab\n--- abc\n" in capsys.readouterr().out


def test_a_failing_variant_is_named_with_its_stderr(child_module, tmp_path):
    from scripts._variants import VariantFailed, run_variant

    with pytest.raises(VariantFailed) as err:
        run_variant(child_module, "broken", tmp_path)
    assert err.value.variant == "broken" and err.value.returncode == 1
    message = str(err.value)
    assert "'broken'" in message and "about to fail" in message and "the broken variant's own message" in message
    with pytest.raises(VariantFailed, match="no JSON from the child"):
        run_variant(child_module, "silent", tmp_path)


def test_readme_layout_names_scripts():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\nscripts/ " in text and "shared/benchmarks" not in text
