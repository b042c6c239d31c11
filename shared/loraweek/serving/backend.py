"""What the server serves: a model, its tokenizer, its end-of-turn ids and its names.

`--adapter DIR` serves two names from one set of weights: the adapter (fine-tuned)
and the base (peft's `disable_adapter()`), exactly how vLLM lists LoRA modules next to
their base.  `--merge` folds the adapter into a full-precision reload of the base
(`merge_and_unload`): faster, but then there is only the merged model.  Merging into
the 4-bit base is refused: the merged weights would be re-quantized and the answers
change (peft warns about it; Day 5 measures it).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from loraweek.data.chat import end_of_turn_id

QUANTIZATIONS = ("nf4", "none")


@dataclass
class ServedModel:
    model: object
    tokenizer: object
    names: dict[str, bool]            # served name -> adapter enabled?
    eos_ids: list[int]
    description: dict = field(default_factory=dict)

    @property
    def default_name(self) -> str:
        return next(iter(self.names))

    @contextlib.contextmanager
    def use(self, name: str):
        """Run under the chosen name: the base name switches the adapter off."""
        if self.names[name] or not hasattr(self.model, "disable_adapter"):
            yield
        else:
            with self.model.disable_adapter():
                yield


def end_of_turn_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id that ends a turn: the tokenizer's eos, the chat template's end-of-turn token
    and the generation config's eos.  Missing one is the classic 'generation never stops' bug."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    ids.add(int(end_of_turn_id(tokenizer)))
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else list(eos or []))
    if not ids:
        raise ValueError("the tokenizer has no eos token and the generation config none either: "
                         "generation would never stop")
    return sorted(ids)


def _load_tokenizer(*folders):
    from transformers import AutoTokenizer

    for folder in folders:
        if folder and (Path(folder) / "tokenizer_config.json").exists():
            tok = AutoTokenizer.from_pretrained(folder)
            break
    else:
        tok = AutoTokenizer.from_pretrained(folders[-1])
    if not tok.chat_template:
        raise ValueError(f"the tokenizer in {folders[-1]} has no chat template; save the tokenizer with its "
                         "chat template next to the model (served prompts must match training)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _base_of(adapter: Path, base: str | None, profile) -> str:
    from loraweek.models import resolve_model_path

    if base:
        return resolve_model_path(base)
    cfg_file = adapter / "adapter_config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"--adapter {adapter}: no adapter_config.json there; expected a folder written "
                                "by peft's save_pretrained")
    recorded = json.loads(cfg_file.read_text()).get("base_model_name_or_path")
    if recorded and (Path(recorded).is_dir() or not recorded.startswith(("/", "."))):
        return resolve_model_path(recorded)
    return resolve_model_path(profile.model_id)


def load_served_model(adapter=None, model=None, *, base: str | None = None, quantization: str = "none",
                      merge: bool = False, adapter_name: str | None = None, profile=None) -> ServedModel:
    """Load what `python -m loraweek.serving` serves (see the module docstring)."""
    from transformers import AutoModelForCausalLM

    from loraweek.models import bnb_4bit_config, keep_cpu_4bit_trainable
    from loraweek.profiles import get_profile

    if (adapter is None) == (model is None):
        raise ValueError("give exactly one of adapter=DIR (a peft adapter) or model=DIR (a full model folder)")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if merge and quantization != "none":
        raise ValueError("merge=True needs quantization='none': merging into a 4-bit base re-quantizes the "
                         "merged weights and changes the answers; merge into a full-precision reload")
    profile = profile or get_profile()
    kwargs = dict(dtype=profile.compute_dtype, device_map={"": profile.device})
    if quantization == "nf4":
        kwargs["quantization_config"] = bnb_4bit_config(profile.compute_dtype)
    if model is not None:
        folder = Path(model)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"--model {folder}: no config.json there; expected a saved (merged) model folder")
        net = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        tok = _load_tokenizer(folder)
        names = {adapter_name or folder.name: True}
        desc = {"model": str(folder)}
    else:
        from peft import PeftModel

        folder = Path(adapter)
        base_path = _base_of(folder, base, profile)
        net = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
        net = PeftModel.from_pretrained(net, folder)
        tok = _load_tokenizer(folder, base_path)
        name = adapter_name or "helpdesk-router"
        if merge:
            net = net.merge_and_unload()
            names = {name: True}
        else:
            names = {name: True, "base": False}
        desc = {"adapter": str(folder), "base": str(base_path)}
    if quantization == "nf4":
        keep_cpu_4bit_trainable(net)  # see models.py: the CPU repacking trap
    net.eval()
    desc.update(quantization=quantization, merged=merge, dtype=str(profile.compute_dtype).replace("torch.", ""))
    return ServedModel(net, tok, names, end_of_turn_ids(tok, getattr(net, "generation_config", None)), desc)


def prompt_ids(served: ServedModel, messages: list[dict]) -> list[int]:
    enc = served.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)
    return list(enc["input_ids"])


@torch.no_grad()
def warm_up(served: ServedModel) -> None:
    """One tiny forward so the first real request does not pay for lazy initialisation."""
    ids = torch.tensor([[served.eos_ids[0]]], device=served.model.device)
    served.model(input_ids=ids)
