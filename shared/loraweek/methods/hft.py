"""Half fine-tuning (HFT, Hui et al. 2024): full fine-tuning that, at each stage, freezes a
random half of the parameter groups, so half of the pre-trained weights stay untouched at
any time (the paper's argument against catastrophic forgetting), at full fine-tuning's
checkpoint size.

A parameter group is one sub-layer of one decoder layer (its attention, its MLP, its
norms) or one of the remaining pieces (embeddings, final norm).  The optimizer is created
once, over every parameter; a frozen parameter gets no gradient, and AdamW skips
parameters without one (with weight decay 0 they do not move at all).

The stage switch is a forward pre-hook counting training micro-batches, so it works with
any training loop (ours is transformers' Trainer) without a custom callback.
"""
from __future__ import annotations

import random
from collections import OrderedDict

import torch


def parameter_groups(model) -> "OrderedDict[str, list]":
    """Group names -> parameters: `layers.<i>.self_attn`, `layers.<i>.mlp`, ... and the rest."""
    groups: OrderedDict[str, list] = OrderedDict()
    for name, param in model.named_parameters():
        parts = name.split(".")
        if "layers" in parts:
            i = parts.index("layers")
            key = ".".join(parts[i:i + 3])  # layers.<i>.<sub-layer>
        else:
            key = parts[-2] if len(parts) > 1 else parts[0]
        groups.setdefault(key, []).append(param)
    return groups


def freeze_random_half(model, seed: int) -> list[str]:
    """Freeze half (rounded down) of the groups, chosen with `seed`; return the trained ones."""
    groups = parameter_groups(model)
    names = list(groups)
    trained = set(random.Random(seed).sample(names, len(names) - len(names) // 2))
    for name, params in groups.items():
        for p in params:
            p.requires_grad_(name in trained)
    return [n for n in names if n in trained]


def enable_half_fine_tuning(model, stage_steps: int, micro_batches_per_step: int = 1, seed: int = 0):
    """Train every parameter, but re-draw the trained half every `stage_steps` optimizer steps.

    All parameters stay trainable until the first training forward, so the optimizer (built
    before it) holds all of them.  `model.hft_stages` records the trained groups per stage."""
    if stage_steps < 1 or micro_batches_per_step < 1:
        raise ValueError(f"stage_steps and micro_batches_per_step must be >= 1, "
                         f"got {stage_steps} and {micro_batches_per_step}")
    for p in model.parameters():
        p.requires_grad_(True)
    model.hft_stages = []
    seen = {"micro_batches": 0}
    period = stage_steps * micro_batches_per_step

    def pre_hook(module, args, kwargs):
        if not module.training or not torch.is_grad_enabled():  # evaluation and generation do not count
            return
        if seen["micro_batches"] % period == 0:  # a stage starts at an optimizer-step boundary
            model.hft_stages.append(freeze_random_half(model, seed + len(model.hft_stages)))
        seen["micro_batches"] += 1

    model.hft_handle = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    return model


def disable_half_fine_tuning(model) -> None:
    """Remove the stage hook (after training; a reloaded checkpoint never has it)."""
    handle = getattr(model, "hft_handle", None)
    if handle is not None:
        handle.remove()
        model.hft_handle = None
