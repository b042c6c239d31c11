"""Bottleneck (Houlsby) adapters, written here because peft has none and AdapterHub's
`adapters` is pinned to transformers 4.x.

A bottleneck adapter is a small sequential layer `h + up(act(down(h)))` inserted after a
sub-layer's output (Houlsby et al. 2019: after attention and after the MLP).  `up` starts
at zero, so the adapted model starts as exactly the base model.  Unlike LoRA it adds
layers to the forward pass, which cannot be merged into the base weights: its inference
cost is measured in `loraweek.methods.compare`.

We wrap the modules (rather than register hooks) so that `model.state_dict()` names the
adapter weights, which is what saving and reloading rely on.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

CONFIG_FILE = "bottleneck_config.json"
WEIGHTS_FILE = "bottleneck_adapter.safetensors"
DEFAULT_TARGETS = ("self_attn", "mlp")


class BottleneckAdapter(nn.Module):
    """h -> h + up(gelu(down(h))), with `up` initialised at zero (identity at the start)."""

    def __init__(self, hidden_size: int, bottleneck: int):
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be a positive size, got {bottleneck}")
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # compute in the adapter's dtype (fp32) even when the base runs in fp16 / bf16
        out = self.up(nn.functional.gelu(self.down(h.to(self.down.weight.dtype))))
        return h + out.to(h.dtype)


class AdaptedBlock(nn.Module):
    """A sub-layer followed by its adapter.  Attention returns a tuple: adapt its first item."""

    def __init__(self, block: nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.block = block
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        out = self.block(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.adapter(out[0]),) + tuple(out[1:])
        return self.adapter(out)


def add_bottleneck_adapters(model, bottleneck: int = 16, targets=DEFAULT_TARGETS):
    """Freeze `model` and insert an adapter after `targets` of every decoder layer (in place)."""
    unknown = set(targets) - set(DEFAULT_TARGETS)
    if not targets or unknown:
        raise ValueError(f"targets must be a non-empty subset of {DEFAULT_TARGETS}, got {tuple(targets)}")
    if bottleneck < 1:
        raise ValueError(f"bottleneck must be a positive size, got {bottleneck}")
    hidden = model.config.hidden_size
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.model.layers:
        for name in targets:
            block = getattr(layer, name)
            if isinstance(block, AdaptedBlock):
                raise ValueError(f"{name} of this model already has a bottleneck adapter")
            device = next(block.parameters()).device
            setattr(layer, name, AdaptedBlock(block, BottleneckAdapter(hidden, bottleneck).to(device)))
    model.bottleneck_config = {"bottleneck": bottleneck, "targets": list(targets)}
    return model


def adapter_state_dict(model) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ".adapter." in k}


def save_bottleneck(model, directory) -> Path:
    """Write only the adapter weights (and the shape to rebuild them), not the base."""
    from safetensors.torch import save_file

    if not hasattr(model, "bottleneck_config"):
        raise ValueError("this model has no bottleneck adapters (call add_bottleneck_adapters first)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(model.bottleneck_config))
    return directory


def load_bottleneck(base_model, directory):
    """Insert adapters into a freshly loaded `base_model` and load the saved weights."""
    from safetensors.torch import load_file

    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory / name} not found: not a bottleneck-adapter checkpoint")
    config = json.loads((directory / CONFIG_FILE).read_text())
    model = add_bottleneck_adapters(base_model, config["bottleneck"], config["targets"])
    weights = load_file(directory / WEIGHTS_FILE)
    expected = set(adapter_state_dict(model))
    if set(weights) != expected:
        raise ValueError(f"{directory / WEIGHTS_FILE}: adapter weights do not match the model "
                         f"({len(weights)} saved, {len(expected)} expected)")
    model.load_state_dict(weights, strict=False)
    return model
