"""Method name -> how to build the trainable model, and how to save and reload it.

Each `Method` carries its own behaviour (its peft config, or how it attaches to the base; how it
saves and loads; whether it trains the base): the functions below read the table and never
branch on a method's name, so a new method is one row here.

Every method starts from the same base model of the profile and gets the same data, steps,
batch, seed and schedule (see `compare`); only the learning rate is swept per method,
because defaults decide rankings otherwise (peft's own benchmark: IA3 scores 45.5 % at lr
5e-3 and 31.1 % at 1e-4).  Learning rates are factors of the profile's LoRA learning rate,
so the same code runs in every profile.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from loraweek.profiles import Profile

VIRTUAL_TOKENS = 16  # prefix / prompt tuning: learned tokens prepended to every sequence
HFT_STAGES = 4       # half fine-tuning re-draws its trained half this many times per run


# ---------------------------------------------------------------- each method's own behaviour
# The peft methods: (profile, r, alpha) -> the peft config.  Imports are inside: peft is heavy and
# the registry is read by code that only needs the table (names, summaries, learning rates).
def _lora(profile: Profile, r: int, alpha: int):
    from loraweek.models import lora_config

    return lora_config(profile, r=r, alpha=alpha)


def _dora(profile: Profile, r: int, alpha: int):
    config = _lora(profile, r, alpha)
    config.use_dora = True
    return config


def _ia3(profile: Profile, r: int, alpha: int):   # the paper's targets: keys, values, the MLP's down projection
    from peft import IA3Config

    return IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                     task_type="CAUSAL_LM")


def _prefix(profile: Profile, r: int, alpha: int):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(num_virtual_tokens=VIRTUAL_TOKENS, task_type="CAUSAL_LM")


def _prompt(profile: Profile, r: int, alpha: int):   # random init is what makes prompt tuning fail in peft's table
    from peft import PromptTuningConfig, PromptTuningInit

    return PromptTuningConfig(num_virtual_tokens=VIRTUAL_TOKENS, prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
                              task_type="CAUSAL_LM")


# The methods that are not peft's: (model, profile, r, max_steps, seed) -> the model ready to train.
def _attach_bottleneck(model, profile: Profile, r, max_steps, seed):
    from loraweek.methods.bottleneck import add_bottleneck_adapters

    return add_bottleneck_adapters(model, bottleneck=r or profile.lora_r)


def _train_everything(model, profile: Profile, r, max_steps, seed):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _attach_hft(model, profile: Profile, r, max_steps, seed):
    from loraweek.methods.hft import enable_half_fine_tuning

    _train_everything(model, profile, r, max_steps, seed)
    enable_half_fine_tuning(model, stage_steps=max(1, (max_steps or profile.max_steps) // HFT_STAGES),
                            micro_batches_per_step=profile.grad_accum, seed=seed)
    return model


def _save_bottleneck(model, directory: Path) -> Path:
    from loraweek.methods.bottleneck import save_bottleneck

    return save_bottleneck(model, directory)


def _load_bottleneck(base, directory: Path):
    from loraweek.methods.bottleneck import load_bottleneck

    return load_bottleneck(base, directory)


def _before_save_hft(model) -> None:
    from loraweek.methods.hft import disable_half_fine_tuning

    disable_half_fine_tuning(model)   # every weight trainable again, so the whole model is saved


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    lr_factors: tuple[float, ...]   # swept learning rates = profile.learning_rate * factors
    can_merge: bool                 # can the update be folded into the base weights?
    quantization: str | None = None
    # how it trains: a peft config (saved / reloaded with peft, adapter only), or `attach` on the
    # base itself; `trains_base`: the base's own weights change (saved whole, kept in fp32)
    peft_config: Callable | None = None
    attach: Callable | None = None
    trains_base: bool = False
    save: Callable | None = None            # (model, directory) -> directory; None: save_pretrained
    load: Callable | None = None            # (base, directory) -> model; None: peft or a whole model
    before_save: Callable | None = None     # (model) -> None, e.g. HFT's frozen half made trainable again
    counts_all_parameters: bool = False     # HFT trains half at a time but all of them over a run

    @property
    def peft(self) -> bool:
        return self.peft_config is not None


METHODS = {m.name: m for m in (
    Method("full", "full fine-tuning: every weight trains", (0.02, 0.1, 0.5), can_merge=True,
           attach=_train_everything, trains_base=True),
    Method("lora", "LoRA: low-rank update B·A beside each frozen linear", (0.3, 1.0, 3.0), can_merge=True,
           peft_config=_lora),
    Method("qlora", "QLoRA: LoRA on a 4-bit NF4 base", (0.3, 1.0, 3.0), can_merge=False, quantization="nf4",
           peft_config=_lora),
    Method("dora", "DoRA: LoRA direction + a trained magnitude per output", (0.3, 1.0, 3.0), can_merge=True,
           peft_config=_dora),
    Method("bottleneck", "Houlsby adapter: small MLP after attention and MLP", (0.3, 1.0, 3.0), can_merge=False,
           attach=_attach_bottleneck, save=_save_bottleneck, load=_load_bottleneck),
    Method("ia3", "IA3: learned scaling of keys, values and MLP activations", (1.0, 5.0, 25.0), can_merge=True,
           peft_config=_ia3),
    Method("prefix", "prefix tuning: learned keys/values at every layer", (1.0, 5.0, 25.0), can_merge=False,
           peft_config=_prefix),
    Method("prompt", "prompt tuning: learned input embeddings", (1.0, 5.0, 25.0), can_merge=False,
           peft_config=_prompt),
    Method("hft", "half fine-tuning: a random half of the groups trains per stage", (0.02, 0.1, 0.5),
           can_merge=True, attach=_attach_hft, trains_base=True, before_save=_before_save_hft,
           counts_all_parameters=True),
)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


def learning_rates(name: str, profile: Profile, points: int | None = None) -> list[float]:
    """The swept learning rates, lowest first; `points` keeps the highest `points` of the grid.

    Short runs favour high rates: on the ci model at 20 steps every method's best rate was the
    top of a two-point grid, so each grid now reaches one factor higher and a profile with the
    time for it (`Profile.sweep_points`) tries all three."""
    factors = get_method(name).lr_factors
    if points is not None:
        if not isinstance(points, int) or not 1 <= points <= len(factors):
            raise ValueError(f"points must be an integer from 1 to {len(factors)} (the size of {name}'s "
                             f"learning-rate grid), got {points!r}")
        factors = factors[-points:]
    return [profile.learning_rate * f for f in factors]


def trains_base_weights(name: str) -> bool:
    return get_method(name).trains_base


def training_profile(name: str, profile: Profile) -> Profile:
    """Full / half fine-tuning train the weights themselves: keep them in fp32 where the
    hardware would compute in fp16 (fp16 master weights cannot be trained with a grad scaler)."""
    if trains_base_weights(get_method(name).name) and profile.compute_dtype == torch.float16:
        return profile.replace(compute_dtype=torch.float32)
    return profile


def check_rank(r) -> None:
    if r is not None and (not isinstance(r, int) or r < 1):
        raise ValueError(f"r (the adapter rank / bottleneck size) must be a positive integer, got {r!r}")


def peft_config(name: str, profile: Profile, r: int | None = None):
    """The peft configuration of a peft method (None for the others)."""
    method = get_method(name)
    check_rank(r)
    r = profile.lora_r if r is None else r
    alpha = max(1, r * profile.lora_alpha // profile.lora_r)  # keep the profile's alpha / r
    return method.peft_config(profile, r, alpha) if method.peft else None


def load_base(name: str, profile: Profile):
    """The frozen (or, for full / half fine-tuning, trainable) base model of method `name`."""
    from loraweek.models import load_model, prepare_for_qlora

    method = get_method(name)
    model = load_model(training_profile(name, profile), quantization=method.quantization)
    if method.quantization:
        model = prepare_for_qlora(model, profile)
    return model


def build(name: str, profile: Profile, *, r: int | None = None, max_steps: int | None = None, seed: int = 0):
    """A model ready to train with method `name` (fresh base; seeded adapter initialisation)."""
    from peft import get_peft_model

    method = get_method(name)
    check_rank(r)
    torch.manual_seed(seed)
    model = load_base(name, profile)
    if method.peft:
        return get_peft_model(model, peft_config(name, profile, r))
    return method.attach(model, profile, r, max_steps, seed)


def trainable_parameters(name: str, model) -> int:
    """Parameters the method changes.  HFT trains half at a time but all of them over a run."""
    if get_method(name).counts_all_parameters:
        return sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(name: str, model, directory) -> Path:
    """Save what the method trained: the adapter only, or the whole model for full / half FT."""
    method = get_method(name)
    directory = Path(directory)
    if method.save:
        return method.save(model, directory)
    if method.before_save:
        method.before_save(model)
    model.save_pretrained(directory)
    if method.trains_base:  # a whole model: record the method so load_checkpoint refuses a mix-up
        (directory / "method.txt").write_text(name)
    return directory


def load_checkpoint(name: str, profile: Profile, directory):
    """Rebuild the trained model of method `name` from `save_checkpoint`'s directory, in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    method = get_method(name)
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    if method.peft:
        model = PeftModel.from_pretrained(load_base(name, profile), directory)
    elif method.load:
        model = method.load(load_base(name, profile), directory)
    else:
        marker = directory / "method.txt"
        saved = marker.read_text().strip() if marker.exists() else None
        if saved != name:
            raise ValueError(f"{directory} holds a {saved!r} checkpoint, not {name!r}")
        prof = training_profile(name, profile)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=prof.compute_dtype,
                                                     device_map={"": prof.device})
    return model.eval()


def checkpoint_mb(directory) -> float:
    """Size on disk of a checkpoint (peft's generated README model card left out)."""
    return sum(f.stat().st_size for f in Path(directory).rglob("*")
               if f.is_file() and f.name != "README.md") / 2 ** 20
