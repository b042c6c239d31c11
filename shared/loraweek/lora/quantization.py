"""Quantization measured, not described: bitsandbytes int8 / NF4 / FP4 on real weight matrices.

* int8 (LLM.int8's vector-wise scheme): one fp32 scale per output row, weights rounded to
  127 levels each side of zero: 1 byte/param + 4 bytes per row.
* NF4 (QLoRA): weights cut into blocks of 64; each block divided by its absolute maximum
  (absmax) and rounded to the nearest of 16 levels that are quantiles of a normal
  distribution, so normally distributed weights use every level about equally often.
  4 bits/param + one fp32 absmax per block (0.5 bit/param).
* NF4 + double quantization: the absmax constants themselves quantized to 8 bits in blocks
  of 256 (plus one fp32 scale per 256 and a mean offset): 0.127 bit/param instead of 0.5.

Bytes counted here are the tensors that must live in memory for that one matrix.  The
shared code books (16 or 256 float values per data type, the same for every matrix) are not
counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

METHODS = ("int8", "nf4", "nf4_dq", "fp4")


def nf4_levels() -> torch.Tensor:
    """The 16 NF4 code values (normalised to [-1, 1]) that bitsandbytes uses."""
    import bitsandbytes.functional as F

    return F.get_4bit_type("nf4", device="cpu").float().clone()


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def quant_state_bytes(state) -> int:
    """Memory of a 4-bit QuantState's constants: absmax (+ nested absmax and offset with DQ)."""
    n = _nbytes(state.absmax)
    if getattr(state, "nested", False) and state.state2 is not None:
        n += _nbytes(state.state2.absmax) + _nbytes(torch.as_tensor(state.offset))
    return n


@dataclass
class QuantizedWeight:
    method: str
    dequantized: torch.Tensor   # back in the input's dtype and shape
    codes: torch.Tensor | None  # 4-bit: the code index (0..15) of every weight, else None
    n_params: int
    n_bytes: int

    @property
    def bytes_per_param(self) -> float:
        return self.n_bytes / self.n_params

    @property
    def bits_per_param(self) -> float:
        return 8 * self.bytes_per_param


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """bitsandbytes packs two 4-bit codes per byte, the first in the high nibble."""
    packed = packed.reshape(-1).to(torch.uint8)
    codes = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)
    return codes[:n].long()


def quantize_weight(weight: torch.Tensor, method: str, blocksize: int = 64) -> QuantizedWeight:
    """Quantize one weight matrix with bitsandbytes and dequantize it back (CPU or GPU)."""
    import bitsandbytes.functional as F

    w = weight.detach()
    if method == "int8":
        w16 = w.to(torch.float16) if w.is_cuda else w.float()
        q, row_stats, _ = F.int8_vectorwise_quant(w16)
        deq = F.int8_vectorwise_dequant(q, row_stats).to(w.dtype)
        return QuantizedWeight(method, deq.reshape(w.shape), None, w.numel(), _nbytes(q) + _nbytes(row_stats))
    if method in ("nf4", "nf4_dq", "fp4"):
        quant_type = "fp4" if method == "fp4" else "nf4"
        packed, state = F.quantize_4bit(w, blocksize=blocksize, quant_type=quant_type,
                                        compress_statistics=(method == "nf4_dq"))
        deq = F.dequantize_4bit(packed, state, quant_type=quant_type).to(w.dtype)
        return QuantizedWeight(method, deq.reshape(w.shape), unpack_4bit(packed, w.numel()), w.numel(),
                               _nbytes(packed) + quant_state_bytes(state))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def relative_error(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """||approx - reference||_F / ||reference||_F, computed in float64."""
    ref, app = reference.detach().double(), approx.detach().double()
    return float((app - ref).norm() / ref.norm())


def compare_outputs(reference: torch.Tensor, approx: torch.Tensor) -> dict:
    """How far a quantized model's outputs (e.g. logits) are from the reference model's:
    relative_error (Frobenius, float64), max_abs_error, and top1_agreement (the fraction of
    positions whose argmax over the last dimension is the same)."""
    ref, app = reference.detach().double(), approx.detach().double()
    if ref.shape != app.shape:
        raise ValueError(f"shapes differ: {tuple(ref.shape)} vs {tuple(app.shape)}")
    return dict(relative_error=float((app - ref).norm() / ref.norm()),
                max_abs_error=float((app - ref).abs().max()),
                top1_agreement=float((app.argmax(-1) == ref.argmax(-1)).double().mean()))


def code_entropy_bits(codes: torch.Tensor, n_levels: int = 16) -> float:
    """Shannon entropy of how often each of the 16 levels is used: 4.0 bits = all used equally."""
    p = torch.bincount(codes, minlength=n_levels).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


def block_normalized(weight: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """The weights as NF4 sees them: each block of `blocksize` divided by its absmax, in [-1, 1]."""
    w = weight.detach().float().reshape(-1)
    w = w[: w.numel() // blocksize * blocksize].reshape(-1, blocksize)
    return (w / w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)).reshape(-1)


def linear_weight_bytes(model) -> dict:
    """Bytes and parameters of the weights of the model's linear layers (lm_head excluded,
    since bitsandbytes keeps it in 16/32-bit), counting the quantization constants that
    `get_memory_footprint` leaves out (4-bit absmax, int8 row scales)."""
    import bitsandbytes as bnb

    n_bytes = n_params = n_layers = 0
    for name, m in model.named_modules():
        if name.endswith("lm_head") or not isinstance(m, torch.nn.Linear):
            continue
        w = m.weight
        if isinstance(m, bnb.nn.Linear4bit):
            n_params += int(torch.Size(w.quant_state.shape).numel())
            n_bytes += _nbytes(w.data) + quant_state_bytes(w.quant_state)
        elif isinstance(m, bnb.nn.Linear8bitLt):
            n_params += w.numel()
            n_bytes += _nbytes(w.data) + _nbytes(getattr(w, "SCB", None))
        else:
            n_params += w.numel()
            n_bytes += _nbytes(w.data)
        n_layers += 1
    return dict(layers=n_layers, params=n_params, bytes=n_bytes,
                bytes_per_param=n_bytes / max(n_params, 1))


def plot_weights_vs_nf4(weight: torch.Tensor, ax=None, blocksize: int = 64, title: str = ""):
    """Histogram of the block-normalised weights with the 16 NF4 levels (and FP4's) on top."""
    import bitsandbytes.functional as F
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    ax.hist(block_normalized(weight, blocksize).cpu().numpy(), bins=161, range=(-1, 1), density=True,
            color="#9ab", label="weights / block absmax")
    for i, level in enumerate(nf4_levels().tolist()):
        ax.axvline(level, color="C3", lw=1, label="NF4 levels" if i == 0 else None)
    for i, level in enumerate(F.get_4bit_type("fp4", device="cpu").float().tolist()):
        ax.axvline(level, color="C0", lw=1, ls=":", label="FP4 levels" if i == 0 else None)
    ax.set_xlabel("normalised weight")
    ax.set_ylabel("density")
    ax.set_title(title or "why NF4: its levels are dense where the weights are")
    ax.legend(loc="upper right", fontsize=8)
    return ax
