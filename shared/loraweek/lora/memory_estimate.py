"""Back-of-the-envelope training memory: full fine-tuning vs LoRA vs QLoRA.

Where the bytes go, per parameter (the accounting of the QLoRA paper, Dettmers et al. 2023):

* full fine-tuning, 16-bit: weights 2 B + gradients 2 B + Adam's two moments in fp32 8 B
  = 12 B/param.  65B x 12 B = 780 GB, the paper's "more than 780 GB".  Mixed-precision
  training usually also keeps an fp32 master copy of the weights (+4 B -> 16 B/param, 1.04 TB).
* LoRA: the frozen base only needs its 16-bit weights (2 B/param, no gradient, no optimizer
  state); the adapters pay the full 12 B (16 B) per *adapter* parameter, but are ~0.1-1 %
  of the model.
* QLoRA: the frozen base in NF4 = 4 bits + its quantization constants.  One fp32 absmax per
  block of 64 weights costs 32/64 = 0.5 bit/param; double quantization stores those constants
  in 8 bits (8/64 = 0.125 bit) plus one fp32 constant per 256 of them (32/(64*256) ~ 0.002 bit):
  0.127 bit/param, so 4.127 bits ~ 0.516 B/param.
* activations: depend on batch, sequence length, architecture and kernels; `activation_gb`
  gives a *rough* figure (Korthikanti et al. 2022, 16-bit, no FlashAttention), and with
  gradient checkpointing only each layer's input is kept plus one layer recomputed at a time.

These are estimates to reason with, not measurements: CUDA context (~0.3-0.5 GB), allocator
fragmentation, temporary buffers and the framework add to every row.
"""
from __future__ import annotations

from dataclasses import dataclass

from loraweek.hardware import GPU_MEMORY_GIB

GB = 1e9  # decimal gigabytes, as GPU spec sheets count

BYTES_16BIT = 2.0
ADAM_STATE_BYTES = 8.0          # two fp32 moments (m, v)
MASTER_WEIGHT_BYTES = 4.0       # optional fp32 copy of the trained weights
NF4_BITS = 4.0
NF4_BLOCK = 64
ABSMAX_BITS = 32.0 / NF4_BLOCK                                  # 0.5 bit/param without DQ
DQ_ABSMAX_BITS = 8.0 / NF4_BLOCK + 32.0 / (NF4_BLOCK * 256)     # 0.127 bit/param with DQ
NF4_DQ_BYTES = (NF4_BITS + DQ_ABSMAX_BITS) / 8                  # ~0.516 B/param
NF4_BYTES = (NF4_BITS + ABSMAX_BITS) / 8                        # 0.5625 B/param

METHODS = ("full", "lora", "qlora")


def base_weight_bytes(method: str) -> float:
    """Bytes per parameter of the (frozen or trained) base weights."""
    if method in ("full", "lora"):
        return BYTES_16BIT
    if method == "qlora":
        return NF4_DQ_BYTES
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def estimate_training_memory(n_params: float, method: str, trainable_params: float = 0,
                             activation_gb: float = 0.0, master_weights: bool = False) -> dict:
    """Training memory in GB (1e9 bytes): dict with weights, gradients, optimizer, activations, total.

    full : all `n_params` train: weights 2 B, gradients 2 B, Adam 8 B per parameter
           (`trainable_params` is ignored: it is `n_params`).
    lora : base frozen in 16-bit (2 B/param); the `trainable_params` adapter parameters add
           2 B weights + 2 B gradients + 8 B Adam each.
    qlora: as lora, but the base is NF4 with double quantization (NF4_DQ_BYTES per param).
    master_weights: add an fp32 copy (4 B) of every *trained* parameter, counted as optimizer.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    trained = n_params if method == "full" else trainable_params
    weights = n_params * base_weight_bytes(method) + (0 if method == "full" else trained * BYTES_16BIT)
    gradients = trained * BYTES_16BIT
    optimizer = trained * (ADAM_STATE_BYTES + (MASTER_WEIGHT_BYTES if master_weights else 0.0))
    out = dict(weights=weights / GB, gradients=gradients / GB, optimizer=optimizer / GB,
               activations=float(activation_gb))
    out["total"] = out["weights"] + out["gradients"] + out["optimizer"] + out["activations"]
    return out


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's shape: enough to count parameters and LoRA adapters."""
    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of each projection in one decoder layer (Llama / Qwen naming)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, self.intermediate), "up_proj": (h, self.intermediate),
                "down_proj": (self.intermediate, h)}

    @property
    def n_params(self) -> int:
        per_layer = sum(i * o for i, o in self.linear_shapes().values()) + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + self.hidden

    def lora_params(self, r: int, targets=("q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj")) -> int:
        shapes = self.linear_shapes()
        return self.layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


# Public configs: Qwen2.5-0.5B (config.json on the hub), LLaMA-7B and LLaMA-65B (Touvron et al. 2023).
SHAPES = {
    "0.5B": ModelShape("Qwen2.5-0.5B", hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2,
                       vocab=151936, tied_embeddings=True),
    "7B": ModelShape("LLaMA-7B", hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, vocab=32000),
    "65B": ModelShape("LLaMA-65B", hidden=8192, intermediate=22016, layers=80, heads=64, kv_heads=64, vocab=32000),
}

GPUS = GPU_MEMORY_GIB   # loraweek.hardware: one home for the cards the course compares against

QLORA_PAPER_65B_GB = 41.0   # what the QLoRA paper reports for its 65B run (fits a 48 GB GPU)
QLORA_PAPER_FULL_FT_65B_GB = 780.0  # "more than 780 GB" for regular 16-bit finetuning of 65B


def activation_gb(shape: ModelShape, batch: int = 1, seq: int = 512, checkpointing: bool = True) -> float:
    """Rough activation memory (GB) for training, 16-bit.

    Per layer and token, a transformer keeps about (34 h + 5 a s) bytes for the backward pass
    (Korthikanti et al. 2022, no recomputation, no FlashAttention).  With gradient
    checkpointing only each layer's input (2 h bytes) is kept, and one layer at a time is
    recomputed.  Ignores the logits (vocab x seq), which can dominate for small models with
    big vocabularies.  Treat it as an order of magnitude."""
    tokens = batch * seq
    one_layer = tokens * (34 * shape.hidden + 5 * shape.heads * seq)
    if checkpointing:
        return (tokens * 2 * shape.hidden * shape.layers + one_layer) / GB
    return one_layer * shape.layers / GB


def memory_table(estimator=estimate_training_memory, r: int = 16, batch: int = 1, seq: int = 512,
                 checkpointing: bool = True, sizes=("0.5B", "7B", "65B"),
                 headroom_gb: float = 1.0) -> list[dict]:
    """One row per (model size, method): the estimate's parts and which GPUs it fits.

    `estimator` has the signature of `estimate_training_memory` (the notebook passes the
    student's own).  LoRA/QLoRA adapters: rank `r` on all seven linear projections.  A GPU
    "fits" a row when total + `headroom_gb` (CUDA context, fragmentation) <= its memory."""
    rows = []
    for size in sizes:
        shape = SHAPES[size]
        act = activation_gb(shape, batch, seq, checkpointing)
        for method in METHODS:
            trainable = shape.n_params if method == "full" else shape.lora_params(r)
            est = estimator(shape.n_params, method, trainable_params=trainable, activation_gb=act)
            row = dict(size=size, model=shape.name, method=method, params=shape.n_params,
                       trainable=trainable, **{k: float(v) for k, v in est.items()})
            row["fits"] = [gpu for gpu, cap in GPUS.items() if row["total"] + headroom_gb <= cap]
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'model':<14}{'method':<7}{'trainable':>12}{'weights':>9}{'grads':>8}{'optim':>8}"
            f"{'activ.':>8}{'total GB':>10}  fits on")
    lines = [head, "-" * (len(head) + 30)]
    for row in rows:
        fits = ", ".join(g.split(" (")[0] for g in row["fits"]) or "none of them"
        lines.append(f"{row['model']:<14}{row['method']:<7}{row['trainable'] / 1e6:>11,.1f}M"
                     f"{row['weights']:>9.1f}{row['gradients']:>8.1f}{row['optimizer']:>8.1f}"
                     f"{row['activations']:>8.1f}{row['total']:>10.1f}  {fits}")
    return "\n".join(lines)
