"""Over-fitting and regularisation, measured (Day 4): the plumbing behind one figure.

Two LoRA runs from the same base on the same small training subset, with validation loss every
few steps and transformers' `EarlyStoppingCallback` on it (`load_best_model_at_end`,
`metric_for_best_model="eval_loss"`, set by `loraweek.training.train`):

- **over-fitting**: no LoRA dropout, no weight decay, many passes over the subset;
- **regularised**: LoRA dropout (peft's `lora_dropout`, on the adapter's input) and decoupled
  weight decay (AdamW's `weight_decay`, here on the LoRA matrices only: they are all that trains).

Nothing here is new training code: both runs go through `training.train`, only two numbers differ.
`optimizer_states` runs the same trainer with another `optim` (e.g. ``"paged_adamw_8bit"``) and
counts what the optimizer keeps per trainable parameter, with what bitsandbytes said about it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from loraweek.profiles import Profile
from loraweek.training import LossHistory


@dataclass(frozen=True)
class Regime:
    name: str
    lora_dropout: float
    weight_decay: float


# The regularised regime's values: LoRA dropout 0.1 is the QLoRA paper's for models up to 13B
# (arXiv 2305.14314, appendix B.2); a weight decay of 0.1 is the usual AdamW setting for LLM
# fine-tuning (e.g. the Llama 2 paper, arXiv 2307.09288, section 2.2).
OVERFITTING = Regime("over-fitting: no dropout, no weight decay", lora_dropout=0.0, weight_decay=0.0)
REGULARISED = Regime("regularised: LoRA dropout 0.1, weight decay 0.1", lora_dropout=0.1, weight_decay=0.1)


# A constant learning rate after warm-up (the QLoRA paper's schedule, arXiv 2305.14314, section 4):
# a cosine decay to zero would end learning by itself at max_steps and hide the late, over-fitting
# part of the curve that early stopping is there to cut.
SCHEDULE = "constant_with_warmup"


def examples_per_step(profile: Profile) -> int:
    """One optimizer step sees batch x gradient accumulation examples (one device)."""
    return profile.batch_size * profile.grad_accum


def epochs(steps: int, train_examples: int, profile: Profile) -> float:
    """How many passes over `train_examples` examples `steps` optimizer steps make."""
    if train_examples <= 0:
        raise ValueError(f"train_examples must be positive, got {train_examples}")
    return steps * examples_per_step(profile) / train_examples


def steps_per_epoch(train_examples: int, profile: Profile) -> int:
    return math.ceil(train_examples / examples_per_step(profile))


@dataclass
class RegularisationRun:
    regime: Regime
    history: LossHistory
    max_steps: int
    stopped_at: int                 # the last optimizer step taken
    best_step: int                  # the evaluation with the lowest validation loss (restored at the end)
    best_eval_loss: float
    train_examples: int
    epochs_run: float               # passes over the training subset up to `stopped_at`

    @property
    def stopped_early(self) -> bool:
        return self.stopped_at < self.max_steps

    def train_loss_at(self, step: int) -> float:
        """The logged training loss at `step`, or the last one logged before it (a running mean of
        the steps since the previous log, measured in training mode: with dropout on); nan at step 0,
        before any training step."""
        logged = [loss for s, loss in zip(self.history.train_steps, self.history.train_loss) if s <= step]
        return logged[-1] if logged else float("nan")

    def eval_loss_at(self, step: int) -> float:
        return dict(zip(self.history.eval_steps, self.history.eval_loss))[step]

    def gap(self, step: int) -> float:
        """Validation minus training loss at `step`: how much worse the model does on messages it
        never trained on."""
        return self.eval_loss_at(step) - self.train_loss_at(step)


def run_regime(regime: Regime, profile: Profile, tokenizer, train_features: list[dict], eval_features: list[dict],
               output_dir, *, steps: int, eval_every: int, patience: int, learning_rate: float | None = None,
               seed: int = 0, optim: str | None = None) -> RegularisationRun:
    """One run of `regime` from a fresh LoRA adapter on the profile's base (its own quantization),
    evaluating every `eval_every` steps from step 0 and stopping after `patience` evaluations
    without a lower validation loss."""
    from peft import get_peft_model
    from transformers import EarlyStoppingCallback

    from loraweek.models import load_model, lora_config, prepare_for_qlora
    from loraweek.training import train

    if eval_every <= 0 or steps <= 0 or patience <= 0:
        raise ValueError(f"steps, eval_every and patience must be positive, got {steps}, {eval_every}, {patience}")
    torch.manual_seed(seed)
    base = prepare_for_qlora(load_model(profile, quantization=profile.quantization), profile)
    model = get_peft_model(base, lora_config(profile, dropout=regime.lora_dropout))
    trainer_args = dict(weight_decay=regime.weight_decay, eval_steps=eval_every, logging_steps=eval_every,
                        lr_scheduler_type=SCHEDULE)
    if optim:
        trainer_args["optim"] = optim
    # a checkpoint at every evaluation, so that the best one can be restored whichever it is
    result = train(model, tokenizer, train_features, eval_features, profile, output_dir, max_steps=steps,
                   learning_rate=learning_rate, resume=False, save_every=eval_every, seed=seed, progress=False,
                   print_report=False, callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)],
                   trainer_args=trainer_args)
    state, history = result.trainer.state, result.history
    best = min(range(len(history.eval_loss)), key=history.eval_loss.__getitem__)
    run = RegularisationRun(regime=regime, history=history, max_steps=steps, stopped_at=state.global_step,
                            best_step=history.eval_steps[best], best_eval_loss=history.eval_loss[best],
                            train_examples=len(train_features),
                            epochs_run=epochs(state.global_step, len(train_features), profile))
    del result, model, base
    return run


def compare_regimes(profile: Profile, tokenizer, train_features: list[dict], eval_features: list[dict], output_dir,
                    *, steps: int, eval_every: int, patience: int, regimes=(OVERFITTING, REGULARISED),
                    learning_rate: float | None = None, seed: int = 0) -> dict[str, RegularisationRun]:
    """`run_regime` for each regime, same data, seed and steps: name -> run."""
    return {r.name: run_regime(r, profile, tokenizer, train_features, eval_features,
                               Path(output_dir) / f"regime{i}", steps=steps, eval_every=eval_every,
                               patience=patience, learning_rate=learning_rate, seed=seed)
            for i, r in enumerate(regimes)}


# --------------------------------------------------------------------------- optimizer states
@dataclass
class OptimizerStates:
    optim: str
    ran: bool
    state_bytes: int                # every tensor the optimizer keeps (moments, 8-bit quantization maps, scales)
    trainable: int                  # trainable parameters it updates
    by_dtype: dict                  # dtype name -> bytes
    paged: bool                     # any state tensor in paged (CUDA unified) memory
    note: str                       # what the library said: a warning or the error that stopped it

    @property
    def bytes_per_parameter(self) -> float:
        return self.state_bytes / max(self.trainable, 1)


def _state_tensors(optimizer):
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the Trainer's optimizer
    for state in inner.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                yield value


def optimizer_states(optim: str, profile: Profile, tokenizer, train_features: list[dict],
                     eval_features: list[dict], output_dir, *, steps: int = 1, seed: int = 0) -> OptimizerStates:
    """Train a fresh LoRA adapter for `steps` steps with TrainingArguments(optim=`optim`) and count
    the optimizer's state.  A library that cannot run this optimizer here is reported, not raised:
    `ran=False` and its error in `note` (bitsandbytes without a backend for this device, an
    optimizer name transformers does not know)."""
    from peft import get_peft_model

    from loraweek.models import load_model, lora_config, prepare_for_qlora
    from loraweek.training import train

    torch.manual_seed(seed)
    model = get_peft_model(prepare_for_qlora(load_model(profile, quantization=profile.quantization), profile),
                           lora_config(profile))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = train(model, tokenizer, train_features, eval_features, profile, output_dir, max_steps=steps,
                           resume=False, save_every=10 ** 9, seed=seed, progress=False, print_report=False,
                           trainer_args=dict(optim=optim, eval_steps=steps))
        except (ImportError, RuntimeError, ValueError, NotImplementedError) as err:
            return OptimizerStates(optim, False, 0, trainable, {}, False, f"{type(err).__name__}: {err}")
    said = sorted({str(w.message) for w in caught if "bitsandbytes" in w.filename or "aged" in str(w.message)})
    tensors = list(_state_tensors(result.trainer.optimizer))
    by_dtype: dict[str, int] = {}
    for t in tensors:
        by_dtype[str(t.dtype).removeprefix("torch.")] = by_dtype.get(str(t.dtype).removeprefix("torch."), 0) + t.numel() * t.element_size()
    paged = any(getattr(t, "is_paged", False) for t in tensors)
    return OptimizerStates(optim, True, sum(by_dtype.values()), trainable, by_dtype, paged, " ".join(said))
