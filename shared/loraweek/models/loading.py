"""Loading the base model: 4-bit NF4 with double quantization, the right pad token, k-bit prep.

QLoRA (Dettmers et al. 2023) keeps the frozen base in 4-bit NF4, dequantizes it
block by block to the compute dtype for each matmul, and trains LoRA adapters in
higher precision on top.  Double quantization also quantizes the per-block scales
(about 0.37 bits per parameter saved).
"""
from __future__ import annotations

from pathlib import Path

import torch

from loraweek.profiles import CI_MODEL_ID, Profile
from loraweek.quiet import quiet_library_noise

quiet_library_noise()  # see loraweek.quiet: offline bitsandbytes kernel notice, peft's renamed-property call

# A pad token must be a token nothing else uses.  Tried in order where the tokenizer's own is missing or
# is one the chat template uses (SmolLM2 and Llama 3.x ship pad = end-of-turn); only special tokens count.
PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|pad|>", "[PAD]", "<unk>", "[UNK]",
                  "<|reserved_special_token_0|>", "<unused0>")
ADDED_PAD_TOKENS = ("<|pad|>", "<|loraweek_pad|>")  # the first one absent is added where no candidate fits
_TOKENIZER_FIT: dict = {}  # (model path, tokenizer files' mtimes) -> (len(tokenizer), pad id) after the fix


def resolve_model_path(model_id: str) -> str:
    """The ci model is built locally (no hub); anything else is a hub id or a local folder."""
    if model_id == CI_MODEL_ID:
        from loraweek.models.tiny import ensure_ci_model
        return str(ensure_ci_model())
    return model_id


def bnb_4bit_config(compute_dtype: torch.dtype, double_quant: bool = True):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=compute_dtype)


def ensure_pad_token(tokenizer, verbose: bool = True) -> str | None:
    """Trap: pad == end-of-turn.  Collators (and recipes' `labels[ids == pad_id] = -100`) hide padding
    from the loss, so if the pad token *is* the end-of-turn token, the model never learns to emit it and
    never stops; a pad token the template writes elsewhere (bos, a header token) is hidden the same way.

    Where the pad token is missing or is one of those, use the first of PAD_CANDIDATES (or the unk token)
    that the vocabulary has as a special token and nothing else uses; else add a new special token
    (ADDED_PAD_TOKENS; `load_model` then gives the model's embeddings a row for it).  Prints and returns
    one line saying what changed and why; None when the pad token was already right.  A tokenizer
    without a chat template raises ValueError: where an assistant turn ends cannot be known."""
    from loraweek.data.chat import find_end_of_turn, special_tokens, template_special_tokens

    eot = find_end_of_turn(tokenizer)
    used = {}  # token -> what it is; a pad token must be none of these (the first role found wins)
    for token, role in ((eot, "the end-of-turn token"), (tokenizer.eos_token, "the eos token"),
                        (tokenizer.bos_token, "the bos token"),
                        *((t, "a token the chat template writes") for t in sorted(template_special_tokens(tokenizer)))):
        if token:
            used.setdefault(token, role)
    old = tokenizer.pad_token
    if old is not None and old not in used:
        return None
    if old is None:
        why = "the tokenizer has none and padded batches need one"
    elif old in (eot, tokenizer.eos_token):
        why = (f"{old!r} is also {used[old]}, so padding would be masked out of the loss and "
               "the model would never learn to stop")
    else:
        why = f"{old!r} is also {used[old]}, so masking padding would mask it in every prompt too"
    vocab, specials = tokenizer.get_vocab(), special_tokens(tokenizer)
    fits = [t for t in (*PAD_CANDIDATES, tokenizer.unk_token) if t and t in vocab and t in specials and t not in used]
    if fits:
        tokenizer.pad_token = fits[0]
        how = f"using {fits[0]!r} (id {tokenizer.pad_token_id}) for padding"
    else:
        added = next(t for t in ADDED_PAD_TOKENS if t not in vocab)
        tokenizer.add_special_tokens({"pad_token": added})
        how = (f"added a new special token {added!r} (id {tokenizer.pad_token_id}) for padding: the vocabulary has "
               "no unused one (load_model gives the embeddings a row for it)")
    line = f"pad token: {why} -> {how}"
    if verbose:
        print(line)
    return line


def _tokenizer_key(path: str) -> tuple:
    files = [Path(path) / name for name in ("tokenizer.json", "tokenizer_config.json")]
    return path, tuple(f.stat().st_mtime_ns for f in files if f.is_file())


def load_tokenizer(profile: Profile, verbose: bool = True):
    """The profile's tokenizer with eos = the template's end-of-turn token and a pad token nothing
    else uses (`ensure_pad_token`: fixed where the model ships a wrong one, and said so)."""
    from transformers import AutoTokenizer

    from loraweek.data.chat import find_end_of_turn

    path = resolve_model_path(profile.model_id)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # Generation stops at eos: make it the token that ends an assistant turn in this model's
    # template (<|im_end|> in ChatML, <|eot_id|> in Llama 3, <end_of_turn> in Gemma).
    tokenizer.eos_token = find_end_of_turn(tokenizer)
    ensure_pad_token(tokenizer, verbose)
    _TOKENIZER_FIT[_tokenizer_key(path)] = (len(tokenizer), tokenizer.pad_token_id)
    return tokenizer


def fit_embeddings(model, rows: int, pad_token_id: int | None) -> bool:
    """Pair a model with its tokenizer (`len(tokenizer)`, `tokenizer.pad_token_id`): embeddings get a row
    for every token (new rows = the mean of the old ones, so every load gives the same model), and the
    config, the generation config and the embedding's padding_idx name the tokenizer's pad token.  True
    when the embeddings grew."""
    if pad_token_id is not None:
        for config in (model.config, getattr(model, "generation_config", None)):
            if config is not None:
                config.pad_token_id = pad_token_id
    old = model.get_input_embeddings().num_embeddings
    if rows > old:
        model.resize_token_embeddings(rows, mean_resizing=False)
        with torch.no_grad():
            for layer in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
                          if m is not None}.values():
                weight = layer.weight
                if weight.dim() == 2 and weight.shape[0] == rows:  # not a packed 4-bit matrix
                    weight[old:] = weight[:old].mean(dim=0, keepdim=True).to(weight.dtype)
    # An embedding built with the model's own pad id as padding_idx gives that row no gradient: it must be
    # the tokenizer's pad token, not SmolLM2's <|im_end|> (a trained embedding would never learn it).
    embedding = model.get_input_embeddings()
    if getattr(embedding, "padding_idx", None) is not None and pad_token_id is not None:
        embedding.padding_idx = pad_token_id
    return rows > old


def load_model(profile: Profile, quantization: str | None = "nf4", double_quant: bool = True):
    """Load the profile's base model: `nf4` (QLoRA), `int8`, or None (plain, in the compute dtype),
    fitted to the profile's tokenizer (`fit_embeddings`: a row for a pad token `load_tokenizer` added)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs = dict(dtype=profile.compute_dtype, device_map={"": profile.device})
    if quantization == "nf4":
        kwargs["quantization_config"] = bnb_4bit_config(profile.compute_dtype, double_quant)
    elif quantization == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    elif quantization is not None:
        raise ValueError(f"quantization must be 'nf4', 'int8' or None, got {quantization!r}")
    path = resolve_model_path(profile.model_id)
    if _tokenizer_key(path) not in _TOKENIZER_FIT:  # usually load_tokenizer ran first; else quietly now
        load_tokenizer(profile, verbose=False)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization == "nf4":
        keep_cpu_4bit_trainable(model)
    fit_embeddings(model, *_TOKENIZER_FIT[_tokenizer_key(path)])
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
