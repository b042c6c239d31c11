"""A LoRA layer written from scratch: the reference for Day 1's first exercise.

LoRA (Hu et al. 2021, arXiv 2106.09685) freezes a pretrained weight W (d_out x d_in) and
learns a low-rank update  delta W = (alpha / r) * B @ A  with A (r x d_in) and B (d_out x r):

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T

B starts at zero, so at step 0 the wrapped layer computes exactly what the base layer did,
and training starts from the pretrained model rather than from a perturbed one.  A starts
random (Kaiming-uniform, as in peft) so that the gradient of B is not zero.

The notebook's students write their own `LoRALinear`; later cells fall back to this one when
theirs is still blank, so one unfinished exercise never breaks another.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """Wrap a frozen `nn.Linear` with a trainable low-rank update (attributes `A`, `B`, `scaling`)."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if r <= 0:
            raise ValueError(f"rank r must be positive, got {r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        w = base.weight
        dtype = w.dtype if w.is_floating_point() else torch.float32
        self.A = nn.Parameter(torch.empty(r, base.in_features, dtype=dtype, device=w.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, dtype=dtype, device=w.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        return self.scaling * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        update = (self.dropout(x.to(self.A.dtype)) @ self.A.T) @ self.B.T
        return y + (self.scaling * update).to(y.dtype)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain `nn.Linear` with W + (alpha/r) B A: same outputs, no extra inference cost."""
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                           dtype=self.base.weight.dtype, device=self.base.weight.device)
        merged.weight.copy_(self.base.weight + self.delta_weight().to(self.base.weight.dtype))
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def target_matches(name: str, target_modules) -> bool:
    """peft's rule for a list of names: the module's full name equals one, or ends with '.' + one."""
    return any(name == t or name.endswith("." + t) for t in target_modules)


def inject_lora(model: nn.Module, target_modules, make_lora) -> list[str]:
    """Replace every targeted `nn.Linear` by `make_lora(linear)`, freeze everything else, and
    return the replaced modules' names (sorted)."""
    targets = [name for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and target_matches(name, target_modules)]
    for p in model.parameters():
        p.requires_grad_(False)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make_lora(getattr(parent, child)))
    return sorted(targets)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared (tied) tensors are counted once."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def lora_param_formula(model: nn.Module, target_modules, r: int) -> int:
    """r * (d_in + d_out) summed over the targeted linear layers."""
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and target_matches(name, target_modules))
