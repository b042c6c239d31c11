"""Merge the LoRA adapter into the base and export a folder any server can load.

The procedure (peft's advice after QLoRA training):

1. reload the base in the compute dtype (fp16 on a T4, bf16 / fp32 elsewhere), NOT in 4-bit;
2. attach the adapter and `merge_and_unload()`: W' = W + (alpha / r) * B A, the LoRA layers gone;
3. save the model with its tokenizer, the chat template, and a generation config whose EOS list
   holds the end-of-turn token `<|im_end|>` (and `<|endoftext|>`): a server that only knows
   `<|endoftext|>` as EOS generates past the answer until max_tokens.

Why not merge into the 4-bit base?  peft can (it dequantizes, adds B A, re-quantizes), but the
re-quantization rounds the sum to the NF4 grid again: the adapter's small update is partly lost
and the outputs change.  `compare_merges` measures both merges against their unmerged models:
max |logit difference| and how often the top token agrees.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from loraweek.profiles import Profile

END_OF_TEXT = "<|endoftext|>"


def _check_adapter_dir(adapter_dir) -> Path:
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").exists():
        raise FileNotFoundError(f"adapter_dir {folder} has no adapter_config.json: expected a folder written by "
                                "PeftModel.save_pretrained (or loraweek.models.finetuned.course_adapter())")
    return folder


def attach_adapter(profile: Profile, adapter_dir, quantization: str | None = None):
    """(PeftModel in eval mode, tokenizer): the profile's base (`quantization` None = compute dtype,
    or "nf4") with the adapter attached, unmerged."""
    from peft import PeftModel

    from loraweek.models import load_model, load_tokenizer

    folder = _check_adapter_dir(adapter_dir)
    tokenizer = load_tokenizer(profile)
    base = load_model(profile, quantization=quantization)
    return PeftModel.from_pretrained(base, folder).eval(), tokenizer


def end_of_turn_generation_config(model, tokenizer):
    """The model's generation config with EOS = [the template's end-of-turn token (ChatML:
    <|im_end|>), <|endoftext|> where the vocabulary has it, the model's own EOS] and a pad token."""
    from loraweek.data.chat import end_of_turn_id

    gen = model.generation_config
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    wanted = [end_of_turn_id(tokenizer)]  # raises, naming the template, where it has none
    if END_OF_TEXT in tokenizer.get_vocab():
        wanted.append(tokenizer.convert_tokens_to_ids(END_OF_TEXT))
    gen.eos_token_id = list(dict.fromkeys(wanted + [e for e in eos if e is not None]))
    gen.pad_token_id = tokenizer.pad_token_id
    return gen


def export_merged(profile: Profile, adapter_dir, out_dir) -> Path:
    """Merge the adapter into a compute-dtype reload of the base and save model + tokenizer +
    chat template + generation config into `out_dir`.  Returns `out_dir`."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out_dir {out} is not empty: pass a new or empty folder")
    model, tokenizer = attach_adapter(profile, adapter_dir, quantization=None)
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer of {profile.model_id} has no chat template: a server could not "
                         "format conversations (set tokenizer.chat_template before exporting)")
    merged = model.merge_and_unload()
    merged.config.use_cache = True  # training turned the KV cache off; serving wants it
    merged.generation_config = end_of_turn_generation_config(merged, tokenizer)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@dataclass
class LogitComparison:
    max_abs_logit_diff: float
    token_agreement: float          # share of positions whose top-1 token is the same
    positions: int


@dataclass
class MergeCheck:
    fp: LogitComparison             # merged into the compute-dtype base vs the unmerged adapter
    nf4: LogitComparison            # merged into the 4-bit base (re-quantized) vs unmerged 4-bit + adapter

    def as_dict(self) -> dict:
        return asdict(self)


def compare_logits(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> LogitComparison:
    """Max |a - b| and top-1 agreement over the positions where `mask` is 1."""
    keep = mask.bool()
    a, b = a[keep].float(), b[keep].float()
    return LogitComparison(max_abs_logit_diff=float((a - b).abs().max()),
                           token_agreement=float((a.argmax(-1) == b.argmax(-1)).float().mean()),
                           positions=int(keep.sum()))


@torch.no_grad()
def _logits(model, batch) -> torch.Tensor:
    return model(**batch).logits.float()


def _merge_gap(profile: Profile, adapter_dir, texts: list[str], quantization: str | None) -> LogitComparison:
    model, tokenizer = attach_adapter(profile, adapter_dir, quantization=quantization)
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
    unmerged = _logits(model, batch)
    with warnings.catch_warnings():
        # peft warns that merging into 4-bit changes generations: measuring that is the point here
        warnings.filterwarnings("ignore", message=".*Merge lora module to 4-bit linear.*")
        merged = model.merge_and_unload()
    return compare_logits(unmerged, _logits(merged, batch), batch["attention_mask"])


def compare_merges(profile: Profile, adapter_dir, texts: list[str]) -> MergeCheck:
    """Measure both merges on `texts` (e.g. rendered chat prompts): each merged model against the
    same base + adapter unmerged."""
    if not texts:
        raise ValueError("texts is empty: pass a few prompts to compare the logits on")
    return MergeCheck(fp=_merge_gap(profile, adapter_dir, texts, None),
                      nf4=_merge_gap(profile, adapter_dir, texts, "nf4"))
