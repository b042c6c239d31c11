"""Profile resolution: NBGRADER_EXECUTION > name argument > LORAWEEK_PROFILE > hardware."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import profiles  # noqa: E402
from loraweek.profiles import ENV_VAR, PROFILE_NAMES, get_profile  # noqa: E402


SMOLLM2_FOLDER = "/converted/smollm2"  # what loraweek.models.smollm2.ensure_converted returns, stubbed


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test starts from an environment without the variables that steer the choice; the
    laptop profile's SmolLM2 folder is stubbed (its conversion is tests/test_smollm2.py's)."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(profiles.MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(profiles, "smollm2_folder", lambda: SMOLLM2_FOLDER)


@pytest.mark.parametrize("name", [None, "auto", "colab", "gpu", "laptop"])
def test_nbgrader_execution_forces_ci(monkeypatch, name):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv(ENV_VAR, "gpu")
    profile = get_profile(name)
    assert profile.name == "ci"
    assert "NBGRADER_EXECUTION" in profile.reason


@pytest.mark.parametrize("name", ["colab", "gpu", "ci", "laptop"])
def test_explicit_name_beats_env_var(monkeypatch, name):
    other = next(n for n in PROFILE_NAMES if n != name)
    monkeypatch.setenv(ENV_VAR, other)
    profile = get_profile(name)
    assert profile.name == name
    assert "PROFILE parameter" in profile.reason


@pytest.mark.parametrize("name", [None, "auto", ""])
@pytest.mark.parametrize("env_value", ["colab", "gpu", "laptop"])
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
    with pytest.raises(ValueError, match=r"unknown profile 'big'.*ci, laptop, colab, gpu"):
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


# --------------------------------------------------------------------------- laptop
def test_laptop_is_smollm2_from_the_converted_cache_in_fp32_on_the_cpu():
    laptop = get_profile("laptop")
    assert laptop.name == "laptop"
    assert laptop.model_id == SMOLLM2_FOLDER  # the converted folder, never a hub id
    assert laptop.compute_dtype == torch.float32
    assert laptop.device == "cpu"  # a CPU profile, even where there is a GPU
    assert laptop.quantization is None  # plain LoRA: scripts/README.md, bench_laptop.py
    assert get_profile("ci").quantization == get_profile("colab").quantization == "nf4"  # QLoRA elsewhere


def test_laptop_sizes_fit_smollm2_on_a_cpu():
    laptop, ci = get_profile("laptop"), get_profile("ci")
    # one code path: laptop sets every size ci sets, and beyond them only fields with a default
    # (its plain-LoRA base, its compression sample)
    assert set(profiles._SIZES["ci"]) <= set(profiles._SIZES["laptop"])
    defaulted = {f.name for f in dataclasses.fields(profiles.Profile) if f.default is not dataclasses.MISSING}
    assert set(profiles._SIZES["laptop"]) - set(profiles._SIZES["ci"]) <= defaulted
    assert laptop.batch_size * laptop.grad_accum == ci.batch_size * ci.grad_accum  # same examples per step
    assert laptop.batch_size < ci.batch_size  # smaller micro-batches: the activations fit 4 GB
    assert laptop.max_seq_len >= 384  # SmolLM2's tokens per example: median 292, p99 375 (ci's 320 drops 23%)
    assert laptop.max_new_tokens >= 160  # a JSON answer is ~101 SmolLM2 tokens
    assert not laptop.gradient_checkpointing


@pytest.mark.parametrize("how", ["argument", "env"])
def test_laptop_model_can_be_pointed_elsewhere_without_converting(monkeypatch, how):
    monkeypatch.setattr(profiles, "smollm2_folder", lambda: pytest.fail("must not convert SmolLM2"))
    if how == "env":
        monkeypatch.setenv(profiles.MODEL_ENV_VAR, "/my/model")
        laptop = get_profile("laptop")
    else:
        laptop = get_profile("laptop", model="/my/model")
    assert laptop.model_id == "/my/model" and laptop.name == "laptop"


def test_laptop_selected_by_env_var_and_importing_profiles_stays_light(monkeypatch):
    import subprocess

    monkeypatch.setenv(ENV_VAR, "laptop")
    assert get_profile().name == "laptop"
    # importing profiles imports neither transformers nor the SmolLM2 conversion
    code = ("import sys; sys.path.insert(0, 'shared'); import loraweek.profiles; "
            "print(sorted(m for m in ('transformers', 'loraweek.models.smollm2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
