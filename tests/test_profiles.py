"""Profile resolution: NBGRADER_EXECUTION > name argument > LORAWEEK_PROFILE > hardware."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import profiles  # noqa: E402
from loraweek.profiles import ENV_VAR, PROFILE_NAMES, get_profile  # noqa: E402


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test starts from an environment without the variables that steer the choice."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.mark.parametrize("name", [None, "auto", "colab", "gpu"])
def test_nbgrader_execution_forces_ci(monkeypatch, name):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv(ENV_VAR, "gpu")
    profile = get_profile(name)
    assert profile.name == "ci"
    assert "NBGRADER_EXECUTION" in profile.reason


@pytest.mark.parametrize("name", ["colab", "gpu", "ci"])
def test_explicit_name_beats_env_var(monkeypatch, name):
    other = next(n for n in PROFILE_NAMES if n != name)
    monkeypatch.setenv(ENV_VAR, other)
    profile = get_profile(name)
    assert profile.name == name
    assert "PROFILE parameter" in profile.reason


@pytest.mark.parametrize("name", [None, "auto", ""])
@pytest.mark.parametrize("env_value", ["colab", "gpu"])
def test_env_var_used_when_no_name(monkeypatch, name, env_value):
    monkeypatch.setenv(ENV_VAR, env_value)
    profile = get_profile(name)
    assert profile.name == env_value
    assert ENV_VAR in profile.reason


def test_unknown_name_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError) as err:
        get_profile("t4")
    msg = str(err.value)
    assert "'t4'" in msg
    for choice in PROFILE_NAMES:
        assert choice in msg


def test_unknown_env_value_is_a_value_error_too(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "big")
    with pytest.raises(ValueError, match=r"unknown profile 'big'.*ci, colab, gpu"):
        get_profile(None)


def test_profiles_differ_only_in_sizes():
    ci, colab = get_profile("ci"), get_profile("colab")
    assert ci.model_id == profiles.CI_MODEL_ID
    assert ci.compute_dtype == colab.compute_dtype == profiles.hardware_compute_dtype()
    assert ci.device == "cpu"  # ci never takes the GPU, even where there is one


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only default")
def test_cpu_default_is_ci_in_float32():
    profile = get_profile()
    assert profile.name == "ci"
    assert profile.compute_dtype == torch.float32
    assert profile.device == "cpu"
    assert "no CUDA" in profile.reason
    assert profile.replace(max_steps=3).max_steps == 3 and profile.max_steps != 3  # frozen, replace copies
