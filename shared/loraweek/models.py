"""Loading the base model: 4-bit NF4 with double quantization, the right pad token, k-bit prep.

QLoRA (Dettmers et al. 2023) keeps the frozen base in 4-bit NF4, dequantizes it
block by block to the compute dtype for each matmul, and trains LoRA adapters in
higher precision on top.  Double quantization also quantizes the per-block scales
(about 0.37 bits per parameter saved).
"""
from __future__ import annotations

import torch

from loraweek.profiles import CI_MODEL_ID, Profile
from loraweek.quiet import quiet_library_noise

quiet_library_noise()  # see loraweek.quiet: offline bitsandbytes kernel notice, peft's renamed-property call

# Tried in order when a tokenizer has no pad token (Qwen/ChatML, Llama 3.1+, Gemma and others).
PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|pad|>")


def resolve_model_path(model_id: str) -> str:
    """The ci model is built locally (no hub); anything else is a hub id or a local folder."""
    if model_id == CI_MODEL_ID:
        from loraweek.tiny_model import ensure_ci_model
        return str(ensure_ci_model())
    return model_id


def bnb_4bit_config(compute_dtype: torch.dtype, double_quant: bool = True):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=compute_dtype)


def ensure_pad_token(tokenizer) -> None:
    """Trap: pad == end-of-turn.  Collators mask padding out of the loss, so if the pad
    token *is* the end-of-turn token, the model never learns to emit it and never stops.
    Qwen ships a separate `<|endoftext|>` pad token; keep it, and refuse a tokenizer that
    makes the two equal."""
    if tokenizer.pad_token is None:
        vocab = tokenizer.get_vocab()
        tokenizer.pad_token = next((t for t in PAD_CANDIDATES if t in vocab and t != tokenizer.eos_token),
                                   tokenizer.unk_token)
    if tokenizer.pad_token is None:
        raise ValueError(f"the tokenizer has no pad token and none of {', '.join(PAD_CANDIDATES)} or an unk token "
                         "to use as one; add a dedicated pad token (never the end-of-turn token)")
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"pad token {tokenizer.pad_token!r} equals the end-of-turn token "
                         f"{tokenizer.eos_token!r}: the model would never learn to stop")


def load_tokenizer(profile: Profile):
    from transformers import AutoTokenizer

    from loraweek.data.chat import find_end_of_turn

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(profile.model_id))
    # Generation stops at eos: make it the token that ends an assistant turn in this model's
    # template (<|im_end|> in ChatML, <|eot_id|> in Llama 3, <end_of_turn> in Gemma).
    tokenizer.eos_token = find_end_of_turn(tokenizer)
    ensure_pad_token(tokenizer)
    return tokenizer


def load_model(profile: Profile, quantization: str | None = "nf4", double_quant: bool = True):
    """Load the profile's base model: `nf4` (QLoRA), `int8`, or None (plain, in the compute dtype)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs = dict(dtype=profile.compute_dtype, device_map={"": profile.device})
    if quantization == "nf4":
        kwargs["quantization_config"] = bnb_4bit_config(profile.compute_dtype, double_quant)
    elif quantization == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    elif quantization is not None:
        raise ValueError(f"quantization must be 'nf4', 'int8' or None, got {quantization!r}")
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(profile.model_id), **kwargs)
    if quantization == "nf4":
        keep_cpu_4bit_trainable(model)
    # No KV cache while training: it is useless there, and transformers only detects
    # padding-free packed batches (separate sequences in one row) when there is none.
    model.config.use_cache = False
    return model


def keep_cpu_4bit_trainable(model) -> int:
    """Work around bitsandbytes 0.50.2 on CPUs with AVX512-BF16: an eval-mode forward
    repacks 4-bit weights into an inference-only layout and never packs them back, so
    training after an evaluation fails ("a view of a leaf Variable ... in-place").
    Turning the repacking off costs a little CPU inference speed and nothing else."""
    import bitsandbytes as bnb

    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def prepare_for_qlora(model, profile: Profile):
    """peft's k-bit preparation: freeze the base, upcast norms for stability, and (on GPUs)
    turn on gradient checkpointing, trading compute for activation memory."""
    from peft import prepare_model_for_kbit_training

    # Checkpointing is switched on here, under transformers' current name, rather than by peft,
    # which still calls the deprecated gradient_checkpointing_enable (a FutureWarning).
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if profile.gradient_checkpointing:
        # use_reentrant=False: gradients reach the LoRA weights without forcing the inputs to need grads
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def lora_config(profile: Profile, r: int | None = None, alpha: int | None = None,
                target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                dropout: float = 0.05):
    from peft import LoraConfig

    return LoraConfig(r=r or profile.lora_r, lora_alpha=alpha or profile.lora_alpha,
                      lora_dropout=dropout, target_modules=list(target_modules), bias="none",
                      task_type="CAUSAL_LM")
