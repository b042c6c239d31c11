"""Every method at the same budget: same data, steps, batch, seed and schedule; a small
learning-rate sweep per method, the best run kept on validation loss; then the measured
table (trainable parameters, checkpoint size, memory, speed, quality, inference latency).

Sizes come from the profile (`CompareBudget.from_profile`); nothing branches on its name.
"""
from __future__ import annotations

import copy
import gc
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from loraweek.methods import registry
from loraweek.profiles import Profile


@dataclass(frozen=True)
class CompareBudget:
    steps: int              # optimizer steps per run (every method, every learning rate)
    score_examples: int     # validation messages each method generates answers for
    latency_tokens: int     # new tokens generated per latency measurement
    latency_repeats: int
    sweep_points: int = 2   # learning rates tried per method

    @classmethod
    def from_profile(cls, profile: Profile) -> "CompareBudget":
        # Nine methods share the notebook's generation budget, so each scores a tenth of it.
        # Comparing learning rates needs a few steps per run: with fewer than 4 (grading
        # sizes) each method runs once, at the top of its grid.
        return cls(steps=profile.sweep_steps, score_examples=max(4, profile.score_examples // 10),
                   latency_tokens=max(4, profile.max_new_tokens // 4), latency_repeats=profile.latency_repeats,
                   sweep_points=profile.sweep_points if profile.sweep_steps >= 4 else 1)


@dataclass
class CompareData:
    tokenizer: object
    train: list[dict]
    validation: list[dict]
    score: list            # HelpdeskExample messages the models answer (validation split)


def load_data(profile: Profile, budget: CompareBudget, examples=None) -> CompareData:
    """Tokenized train / validation features and the messages to score; `examples` optionally
    replaces the training examples (e.g. one language slice)."""
    from loraweek.data import chat, schema
    from loraweek.models import load_tokenizer

    tokenizer = load_tokenizer(profile)
    splits = schema.load_splits()
    train_examples = splits["train"][: profile.train_examples] if examples is None else examples
    train, _ = chat.tokenize_examples(tokenizer, train_examples, profile.max_seq_len)
    val, _ = chat.tokenize_examples(tokenizer, splits["validation"][: profile.eval_examples], profile.max_seq_len)
    return CompareData(tokenizer, train, val, splits["validation"][: budget.score_examples])


@dataclass
class MethodResult:
    method: str
    learning_rate: float
    sweep: dict                     # learning rate -> validation loss after the run
    trainable: int
    trainable_pct: float
    checkpoint_mb: float
    peak_mb: float                  # measured during training (clean only in a fresh process)
    memory_kind: str
    memory_mb: float                # counted: weights + grads + Adam states + saved activations
    s_per_step: float
    tokens_per_s: float
    val_loss_before: float
    val_loss: float
    json_valid: float
    intent_f1: float
    ms_per_token: float             # generation latency, the model as trained (adapters unmerged)
    ms_per_token_merged: float | None  # after folding the update into the weights; None: cannot merge
    checkpoint_dir: str
    answers: list = field(default_factory=list, repr=False)
    probe_logits: torch.Tensor | None = field(default=None, repr=False)  # to check a reloaded checkpoint

    def row(self) -> dict:
        d = {k: v for k, v in asdict(self).items()
             if k not in ("answers", "sweep", "checkpoint_dir", "memory_kind", "probe_logits")}
        return d


@torch.no_grad()
def probe_logits(model, tokenizer, features) -> torch.Tensor:
    """The model's logits on a fixed padded batch: a fingerprint of the trained weights."""
    from loraweek.training import make_collator

    batch = make_collator(tokenizer, "padded")(features)
    model.eval()
    return model(input_ids=batch["input_ids"].to(model.device),
                 attention_mask=batch["attention_mask"].to(model.device)).logits.float().cpu()


def intent_macro_f1(examples, answers) -> float:
    """Day 4's intent macro-F1 (an invalid answer counts as a wrong class)."""
    from loraweek.metrics.classification import intent_f1

    return float(intent_f1(answers, examples)["macro_f1"])


@torch.no_grad()
def ms_per_token(model, tokenizer, example, new_tokens: int, repeats: int) -> float:
    """Greedy decoding latency per generated token, batch 1 (one chat request), warm, median."""
    from loraweek.data import chat

    model.eval()
    batch = tokenizer.apply_chat_template([chat.build_messages(example, with_answer=False)],
                                          add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True).to(model.device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                  pad_token_id=tokenizer.pad_token_id)
    model.generate(**batch, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(**batch, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2] / new_tokens


def merged_copy(name: str, model):
    """The model with its update folded into the weights, or None if the method cannot merge."""
    method = registry.get_method(name)
    if not method.can_merge:
        return None
    if not method.peft:  # full / half fine-tuning: the trained model *is* the merged one
        return model
    return copy.deepcopy(model).merge_and_unload()


def counted_training_mb(model, trainable: int, probe_batch: dict) -> float:
    """Weights + fp32 gradient and two Adam moments per trainable parameter + saved activations.

    Counted, not sampled, so it is clean inside one long notebook process on CPU."""
    from loraweek.memory import projected_saved_activation_mb

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    return weights / 2 ** 20 + trainable * 12 / 2 ** 20 + projected_saved_activation_mb(model, probe_batch)


def base_parameter_count(profile: Profile) -> int:
    from loraweek.models import load_model

    model = load_model(profile, quantization=None)
    return sum(p.numel() for p in model.parameters())


def train_method(name: str, profile: Profile, data: CompareData, output_dir, *, learning_rate: float,
                 steps: int, seed: int = 0):
    """Build method `name` and train it for `steps` at `learning_rate`; returns TrainResult."""
    from loraweek.training import train

    model = registry.build(name, profile, max_steps=steps, seed=seed)
    with warnings.catch_warnings():
        # peft's prompt-based models warn on every batch about position ids they do not use
        warnings.filterwarnings("ignore", message=".*[Pp]osition ids.*")
        return train(model, data.tokenizer, data.train, data.validation, registry.training_profile(name, profile),
                     output_dir, max_steps=steps, learning_rate=learning_rate, resume=False,
                     save_every=10 ** 9, seed=seed, progress=False, print_report=False)


def measure(name: str, result, profile: Profile, data: CompareData, budget: CompareBudget, sweep: dict,
            checkpoint_dir, base_params: int) -> MethodResult:
    """Save, score, time: everything the table reports about one trained method."""
    from loraweek.metrics.answers import score_answers
    from loraweek.generation import generate_answers
    from loraweek.training import make_collator

    model, report = result.model, result.report
    trainable = registry.trainable_parameters(name, model)
    registry.save_checkpoint(name, model, checkpoint_dir)  # before anything else touches the model
    fingerprint = probe_logits(model, data.tokenizer, data.validation[:2])
    probe = make_collator(data.tokenizer, "padded")(data.train[: profile.batch_size])
    memory = counted_training_mb(model, trainable, {k: v.to(model.device) for k, v in probe.items()})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]osition ids.*")
        answers = generate_answers(model, data.tokenizer, data.score, max_new_tokens=profile.max_new_tokens)
        example = data.score[0]
        latency = ms_per_token(model, data.tokenizer, example, budget.latency_tokens, budget.latency_repeats)
        merged = merged_copy(name, model)
        latency_merged = None if merged is None else (
            latency if merged is model else ms_per_token(merged, data.tokenizer, example, budget.latency_tokens,
                                                         budget.latency_repeats))
    del merged
    return MethodResult(
        method=name, learning_rate=min(sweep, key=sweep.get), sweep=sweep, trainable=trainable,
        trainable_pct=100 * trainable / base_params, checkpoint_mb=registry.checkpoint_mb(checkpoint_dir),
        peak_mb=report.peak_memory_mb, memory_kind=report.memory_kind, memory_mb=memory,
        s_per_step=report.train_s / max(report.steps, 1), tokens_per_s=report.tokens_per_s,
        val_loss_before=report.eval_loss_before, val_loss=report.eval_loss_after,
        json_valid=score_answers(data.score, answers)["json_valid"],
        intent_f1=intent_macro_f1(data.score, answers), ms_per_token=latency,
        ms_per_token_merged=latency_merged, checkpoint_dir=str(checkpoint_dir), answers=answers,
        probe_logits=fingerprint)


def sweep_method(name: str, profile: Profile, data: CompareData, output_dir, steps: int, seed: int = 0,
                 on_run=None, points: int | None = None):
    """Train `name` at each of its learning rates; return (best TrainResult, {lr: val loss})."""
    best, sweep = None, {}
    for lr in registry.learning_rates(name, profile, points):
        run_dir = Path(output_dir) / f"lr{lr:g}"
        run = train_method(name, profile, data, run_dir, learning_rate=lr, steps=steps, seed=seed)
        shutil.rmtree(run_dir, ignore_errors=True)  # the kept model is saved by `measure`
        sweep[lr] = run.report.eval_loss_after
        if best is None or run.report.eval_loss_after < best.report.eval_loss_after:
            best = run
        del run
        if on_run:
            on_run(name, lr)
    return best, sweep


def compare_methods(names, profile: Profile, output_dir, *, budget: CompareBudget | None = None,
                    data: CompareData | None = None, progress: bool = True, seed: int = 0) -> list[MethodResult]:
    """Run every method in `names` over its learning-rate sweep; measure each method's best run.

    The best run's checkpoint is kept in `output_dir/<method>/best`."""
    from tqdm.auto import tqdm

    names = list(names)
    if not names:
        raise ValueError("names must list at least one method")
    for name in names:
        registry.get_method(name)  # fail before any training, not after
    budget = budget or CompareBudget.from_profile(profile)
    data = data or load_data(profile, budget)
    base_params = base_parameter_count(profile)
    output_dir = Path(output_dir)
    bar = tqdm(total=sum(len(registry.learning_rates(n, profile, budget.sweep_points)) for n in names),
               desc="runs", disable=not progress)
    results = []
    # What is alive now (the libraries' half a million objects, the caller's state) outlives the
    # loop: freezing it makes each collection between methods ~0.3 s cheaper on a CPU.
    gc.freeze()
    try:
        for name in names:
            best, sweep = sweep_method(name, profile, data, output_dir / name, budget.steps, seed,
                                       on_run=lambda n, lr: (bar.set_postfix_str(f"{n} lr={lr:g}"), bar.update(1)),
                                       points=budget.sweep_points)
            results.append(measure(name, best, profile, data, budget, sweep, output_dir / name / "best", base_params))
            del best
            gc.collect()  # the method's model, optimizer and activations, before the next one
    finally:
        gc.unfreeze()  # back to the oldest generation: collected again from now on
    bar.close()
    return results


ROUNDING = {"trainable_pct": 3, "checkpoint_mb": 3, "peak_mb": 0, "memory_mb": 1, "s_per_step": 3,
            "tokens_per_s": 0, "val_loss_before": 3, "val_loss": 3, "json_valid": 2, "intent_f1": 3,
            "ms_per_token": 2, "ms_per_token_merged": 2}


def results_table(results: list[MethodResult]):
    """A pandas DataFrame, one row per method."""
    import pandas as pd

    return pd.DataFrame([r.row() for r in results]).set_index("method").round(ROUNDING)
