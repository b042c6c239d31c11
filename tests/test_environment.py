"""environment.yml and pyproject.toml name the same packages with compatible pins."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("loraweek")]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def environment_requirements() -> dict[str, Requirement]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {Requirement(r).name.lower(): Requirement(r) for r in pip}


def test_same_packages():
    assert set(pyproject_requirements()) == set(environment_requirements())


def test_compatible_pins():
    py, env = pyproject_requirements(), environment_requirements()
    for name, req in env.items():
        pins = [s.version for s in req.specifier if s.operator == "=="]
        for version in pins:  # an exact pin in the conda env must satisfy pyproject's range
            assert py[name].specifier.contains(version, prereleases=True), (name, version, str(py[name].specifier))
        if not pins:
            assert str(req.specifier) == str(py[name].specifier) or SpecifierSet(str(req.specifier)) == py[name].specifier, name


def test_course_breakers_are_pinned():
    py = pyproject_requirements()
    for name in ("transformers", "peft", "bitsandbytes", "trl", "nbgrader", "papermill"):
        assert any(s.operator == "==" for s in py[name].specifier), f"{name} must be pinned exactly"


def test_local_torch_pin_is_installable():
    # the CPU wheel on the course machines is torch 2.13.0; pyproject's range must admit it
    assert pyproject_requirements()["torch"].specifier.contains("2.13.0")
