"""Profiles: one code path, three sizes.

A profile only changes *sizes* (model, steps, sequence length, batch) and the
compute dtype the hardware supports; every notebook calls the same functions in
every profile.  Resolution order (first match wins):

1. ``NBGRADER_EXECUTION`` is set  -> ``ci`` (grading never runs a student's heavy training);
2. the ``name`` argument (a papermill parameter), unless it is ``None`` / ``"auto"``;
3. the ``LORAWEEK_PROFILE`` environment variable;
4. the hardware: no CUDA -> ``ci``; a GPU with bf16 -> ``gpu``; any other GPU (T4) -> ``colab``.

The model of any profile can be pointed at a local folder (a machine without a hub, a
Qwen-shaped test folder) with the ``model`` argument (a notebook's ``MODEL`` parameter) or the
``LORAWEEK_MODEL`` environment variable.  While grading, the ``ci`` sizes shrink further to
``GRADING_SIZES``: the same cells run, with fewer steps and examples.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

ENV_VAR = "LORAWEEK_PROFILE"
MODEL_ENV_VAR = "LORAWEEK_MODEL"
PROFILE_NAMES = ("ci", "colab", "gpu")
CI_MODEL_ID = "loraweek/tiny-qwen2-ci"  # built locally by loraweek.tiny_model, never downloaded


@dataclass(frozen=True)
class Profile:
    name: str
    model_id: str
    compute_dtype: torch.dtype      # what the 4-bit weights are dequantized to for matmuls
    max_seq_len: int                # longer examples are dropped *and counted*, never silently
    train_examples: int             # how many training examples the run samples from
    eval_examples: int              # validation examples used for eval loss
    max_steps: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    sweep_steps: int                # steps per run of the small hyper-parameter sweep
    sweep_points: int               # learning rates per method in Day 3's comparison (the top of its grid)
    eval_every: int
    save_every: int
    gradient_checkpointing: bool
    max_new_tokens: int
    score_examples: int             # held-out messages per split that notebooks generate answers for
    reason: str = ""                # why this profile was chosen (printed to students)

    def replace(self, **changes) -> "Profile":
        return dataclasses.replace(self, **changes)

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() and self.name != "ci" else "cpu"


def hardware_compute_dtype() -> torch.dtype:
    """fp32 on CPU, bf16 where the GPU supports it, fp16 otherwise (T4 has no bf16)."""
    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


_SIZES = {
    "ci": dict(model_id=CI_MODEL_ID, max_seq_len=320, train_examples=3200, eval_examples=48,
               max_steps=200, batch_size=8, grad_accum=1, learning_rate=5e-3, lora_r=16,
               lora_alpha=32, sweep_steps=40, sweep_points=3, eval_every=100, save_every=100,
               gradient_checkpointing=False, max_new_tokens=80, score_examples=200),
    "colab": dict(model_id="Qwen/Qwen2.5-0.5B-Instruct", max_seq_len=384, train_examples=3200,
                  eval_examples=200, max_steps=300, batch_size=8, grad_accum=2,
                  learning_rate=2e-4, lora_r=16, lora_alpha=32, sweep_steps=40, sweep_points=2, eval_every=50,
                  save_every=50, gradient_checkpointing=True, max_new_tokens=160, score_examples=400),
    "gpu": dict(model_id="Qwen/Qwen2.5-0.5B-Instruct", max_seq_len=512, train_examples=3200,
                eval_examples=400, max_steps=400, batch_size=32, grad_accum=1,
                learning_rate=2e-4, lora_r=16, lora_alpha=32, sweep_steps=60, sweep_points=3, eval_every=50,
                save_every=50, gradient_checkpointing=False, max_new_tokens=160, score_examples=400),
}


# Autograding runs every cell of every submission: the smallest sizes that still execute
# each code path (same functions, fewer steps and examples).  Quality is never graded, so
# answers may be cut at 24 new tokens: a model trained for 2 steps never ends its answer and
# would otherwise generate all 80 tokens of the ci profile every time.
# Measured per notebook in autograde/README.md (python -m autograde.bench_grading).
GRADING_SIZES = dict(max_steps=2, train_examples=16, eval_examples=4, batch_size=4, sweep_steps=1,
                     eval_every=2, save_every=2, score_examples=4, max_new_tokens=24)


def _detect() -> tuple[str, str]:
    if not torch.cuda.is_available():
        return "ci", "no CUDA GPU found"
    gpu = torch.cuda.get_device_name(0)
    if torch.cuda.is_bf16_supported():
        return "gpu", f"{gpu} supports bf16"
    return "colab", f"{gpu} has no bf16 (T4-class): fp16 compute"


def get_profile(name: str | None = None, model: str | None = None) -> Profile:
    """Resolve the profile (see the module docstring for the order) and return it.

    `model` (or ``$LORAWEEK_MODEL``) replaces the profile's model: a hub id or a local folder."""
    grading = bool(os.environ.get("NBGRADER_EXECUTION"))
    if grading:
        chosen, reason = "ci", "NBGRADER_EXECUTION is set (autograding)"
    elif name not in (None, "", "auto"):
        chosen, reason = name, "asked for by the PROFILE parameter"
    elif os.environ.get(ENV_VAR):
        chosen, reason = os.environ[ENV_VAR], f"{ENV_VAR} is set"
    else:
        chosen, reason = _detect()
    if chosen not in _SIZES:
        raise ValueError(f"unknown profile {chosen!r} ({reason}); expected one of {', '.join(PROFILE_NAMES)}")
    sizes = dict(_SIZES[chosen])
    if grading:
        sizes.update(GRADING_SIZES)
    model = model or os.environ.get(MODEL_ENV_VAR)
    if model:
        sizes["model_id"] = str(model)
        reason += f"; model {model}"
    return Profile(name=chosen, compute_dtype=hardware_compute_dtype(), reason=reason, **sizes)
