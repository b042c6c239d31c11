"""A Qwen2.5-0.5B-shaped model with random weights and the ci tokenizer, for the benchmarks'
`--model-config qwen2.5-0.5b` (bench_batching, bench_methods).

The architecture numbers are `loraweek.models.qwen_shape.QWEN25_05B_INSTRUCT`'s; the tokenizer is
the ci one, so every CPU/GPU step is about the model, not a 150k-row embedding.  For the real
tokenizer and vocabulary, build a folder with `python -m scripts.make_qwen_folder` instead.
"""
from __future__ import annotations

from pathlib import Path

from loraweek.models.qwen_shape import QWEN25_05B_INSTRUCT

# the architecture keys the shaped model takes (bos/eos/pad come from the ci tokenizer)
QWEN25_05B = {k: QWEN25_05B_INSTRUCT[k] for k in (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "vocab_size")}


def build_shaped_model(profile, folder: Path, full_vocab: bool, seed: int) -> Path:
    """A Qwen2.5-0.5B-shaped model with random weights and the ci tokenizer, saved in `folder`.

    The ci tokenizer keeps every CPU/GPU step about the model, not a 150k-row embedding;
    `full_vocab` keeps Qwen2.5's 151,936 rows (the real embedding's memory), of which the
    ci tokenizer uses only the first few thousand."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from loraweek.models import load_tokenizer
    from loraweek.profiles import get_profile

    tok = load_tokenizer(get_profile("ci"))
    dims = dict(QWEN25_05B)
    if not full_vocab:
        dims["vocab_size"] = len(tok)
    config = Qwen2Config(bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **dims)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(profile.compute_dtype)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    print(f"built a Qwen2.5-0.5B-shaped model with random weights: {n / 1e6:.0f} M parameters, "
          f"vocab {config.vocab_size:,}, saved in {folder}")
    return folder
