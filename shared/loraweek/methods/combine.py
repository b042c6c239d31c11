"""Combining LoRA adapters with peft's `add_weighted_adapter`.

Two adapters trained on two slices of the task (Vietnamese and English messages) are
combined three ways and each combination is measured on both slices:

- `cat`: stack the ranks (r1 + r2); the combined update is exactly w1·ΔW1 + w2·ΔW2.
- `linear`: add the A's and the B's (needs equal ranks); the product has cross terms
  B1·A2 and B2·A1, so it is *not* a weighted sum of the two updates.
- `svd`: form w1·ΔW1 + w2·ΔW2 and truncate it back to rank r with an SVD.

The trap, tested: one plain LoRA adapter combined alone with weight 1.0 reproduces its own
outputs.  It does not for rsLoRA (the combined adapter keeps `use_rslora` but gets
lora_alpha = r, so its scaling becomes sqrt(r) instead of 1) nor for DoRA (the combined
adapter's magnitude vector is not combined) — `roundtrip_error` measures both.
"""
from __future__ import annotations

import torch

from loraweek.profiles import Profile

COMBINATIONS = {"cat": (1.0, 1.0), "linear": (0.5, 0.5), "svd": (1.0, 1.0)}


def language_slices(examples, languages=("vi", "en")) -> dict:
    """{language: examples in that language}, each non-empty."""
    slices = {lang: [ex for ex in examples if ex.language == lang] for lang in languages}
    empty = [lang for lang, rows in slices.items() if not rows]
    if empty:
        raise ValueError(f"no examples in language(s) {empty}; languages must be among the data's (vi, en)")
    return slices


def load_adapters(profile: Profile, adapter_dirs: dict):
    """A plain base with every adapter of `adapter_dirs` ({name: directory}) loaded under its name."""
    from peft import PeftModel

    from loraweek.methods.registry import load_base

    if not adapter_dirs:
        raise ValueError("adapter_dirs must name at least one adapter directory")
    (first, first_dir), *rest = adapter_dirs.items()
    model = PeftModel.from_pretrained(load_base("lora", profile), first_dir, adapter_name=first)
    for name, directory in rest:
        model.load_adapter(directory, adapter_name=name)
    return model.eval()


def combine(model, adapters, weights, combination_type: str, name: str | None = None) -> str:
    """Add the weighted combination as a new adapter, make it active, return its name."""
    if combination_type not in ("cat", "linear", "svd"):
        raise ValueError(f"combination_type must be 'cat', 'linear' or 'svd', got {combination_type!r}")
    if len(adapters) != len(weights):
        raise ValueError(f"weights has {len(weights)} values but adapters has {len(adapters)}: one weight per adapter")
    name = name or f"{combination_type}_" + "_".join(adapters)
    model.add_weighted_adapter(list(adapters), list(weights), name, combination_type=combination_type)
    model.set_adapter(name)
    return name


@torch.no_grad()
def mean_loss(model, tokenizer, features, batch_size: int = 16) -> float:
    """Token-weighted mean cross-entropy on `features` (the answers only, as in training)."""
    from loraweek.training import make_collator

    collate = make_collator(tokenizer, "padded")
    model.eval()
    total, tokens = 0.0, 0
    for i in range(0, len(features), batch_size):
        batch = {k: v.to(model.device) for k, v in collate(features[i:i + batch_size]).items()}
        n = int((batch["labels"][:, 1:] != -100).sum())  # the shifted labels the loss averages over
        total += model(**batch).loss.item() * n
        tokens += n
    return total / max(tokens, 1)


def evaluate_combinations(model, tokenizer, adapters, features_by_slice: dict, combinations=COMBINATIONS) -> dict:
    """{adapter or combination: {slice: loss}}: each single adapter, then each combination."""
    rows = {}
    for name in adapters:
        model.set_adapter(name)
        rows[name] = {s: mean_loss(model, tokenizer, f) for s, f in features_by_slice.items()}
    for kind, weights in combinations.items():
        combined = combine(model, adapters, weights, kind)
        rows[f"{kind} {weights}"] = {s: mean_loss(model, tokenizer, f) for s, f in features_by_slice.items()}
        model.set_adapter(adapters[0])  # deleting the active adapter makes peft warn
        model.delete_adapter(combined)
    return rows


@torch.no_grad()
def roundtrip_error(base_model, input_ids, variant: str = "lora", combination_type: str = "cat",
                    r: int = 8, seed: int = 0) -> float:
    """Max |logit difference| between a random LoRA adapter and itself combined alone with weight 1.0.

    variant: 'lora' (plain; ~0 expected), 'rslora' or 'dora' (peft's combination is wrong for them)."""
    from peft import LoraConfig, get_peft_model

    if variant not in ("lora", "rslora", "dora"):
        raise ValueError(f"variant must be 'lora', 'rslora' or 'dora', got {variant!r}")
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False,  # random B: the adapter really changes the outputs
                        use_rslora=variant == "rslora", use_dora=variant == "dora", task_type="CAUSAL_LM")
    model = get_peft_model(base_model, config).eval()
    alone = model(input_ids=input_ids).logits
    combine(model, ["default"], [1.0], combination_type, "alone")
    combined = model(input_ids=input_ids).logits
    model.set_adapter("default")
    model.delete_adapter("alone")
    return float((alone - combined).abs().max())
