"""QLoRA training on top of transformers' Trainer.

What this adds to Trainer is only course plumbing: padding-free batches by
default, a validation curve from step 0 (transformers' `eval_on_start`) to the
last step, a loss history for plots, resumable checkpoints, and a report of wall
time, peak memory and non-padding tokens/s printed after every run.

Run from the command line (this is also what `accelerate launch` runs):
    python -m loraweek.training --profile ci --output-dir build/runs/demo
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from loraweek.memory import PeakMemory
from loraweek.profiles import Profile


class FeatureDataset(Dataset):
    """Tokenized examples (dicts of input_ids / labels) as a torch Dataset."""

    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


BATCHING = ("bucketed", "padded", "padding_free")


def make_collator(tokenizer, batching: str = "padded"):
    """padding_free: concatenate the batch into one row with restarting position_ids, so no
    token is padding and attention still never crosses examples.  padded / bucketed: the
    classic right-padded batch with an attention mask (labels padded with -100); bucketed
    also samples examples of similar length together (see `training_arguments`).

    Measured (scripts/bench_batching.py): without FlashAttention-2's varlen
    kernels (CPU; a T4 has none either) SDPA attends over the whole packed row through a
    materialised block mask, quadratic in the row length, so padding-free is the slowest
    here; bucketing is the fastest (1.25x).

    Yet random `padded` batches are the default: on this templated data, examples of similar
    length come from the same phrasing template and so carry the same label, and length-grouped
    batches made the ci model's intent macro-F1 on validation drop from 0.79 to 0.45 (same
    200 steps and seed, issue 7).  Speed that costs the task is no speed-up."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    if batching == "padding_free":
        return DataCollatorWithFlattening(return_position_ids=True)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)


@dataclass
class LossHistory:
    train_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)

    @classmethod
    def from_log(cls, log_history: list[dict]) -> "LossHistory":
        h = cls()
        for row in log_history:
            if "loss" in row:
                h.train_steps.append(row["step"]); h.train_loss.append(row["loss"])
            if "eval_loss" in row:
                h.eval_steps.append(row["step"]); h.eval_loss.append(row["eval_loss"])
        return h


@dataclass
class TrainReport:
    steps: int
    wall_s: float                 # the whole run, evaluations included
    train_s: float                # optimizer steps only
    tokens: int                   # non-padding input tokens the model trained on
    tokens_per_s: float
    peak_memory_mb: float
    memory_kind: str
    eval_loss_before: float
    eval_loss_after: float
    dropped_too_long: int = 0
    resumed_from: str | None = None

    def __str__(self):
        resumed = f" (resumed from {Path(self.resumed_from).name})" if self.resumed_from else ""
        return (f"{self.steps} steps{resumed} in {self.wall_s:.1f} s ({self.train_s:.1f} s training) | "
                f"{self.tokens_per_s:,.0f} non-padding tokens/s ({self.tokens:,} tokens) | "
                f"peak memory {self.peak_memory_mb:,.0f} MB ({self.memory_kind}) | "
                f"eval loss {self.eval_loss_before:.3f} -> {self.eval_loss_after:.3f}")


@dataclass
class TrainResult:
    model: object
    trainer: object
    history: LossHistory
    report: TrainReport


def last_complete_checkpoint(output_dir) -> str | None:
    """The newest checkpoint whose save finished (Trainer writes trainer_state.json last).

    A Colab disconnect in the middle of a save leaves a half-written checkpoint-N behind;
    transformers' get_last_checkpoint would pick it and the resumed run would crash."""
    done = [p for p in Path(output_dir).glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def _tokens_seen_at(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("num_input_tokens_seen", 0))


# The loss only needs logits where a label is trained: the answer and its end-of-turn token, about
# 101 of SmolLM2's ~290 tokens per example.  Projecting every position onto the vocabulary
# materialises [batch, seq, vocab] fp32 logits (8 x 320 x 49,152 x 4 bytes = 503 MB for SmolLM2,
# and as much again for their log-softmax and their gradient); transformers 5.x's `logits_to_keep`
# (a boolean [batch, seq] mask) projects only the kept positions.  The loss and the gradients are
# those of the model's own loss (tests/test_answer_logits.py); scripts/bench_laptop.py
# measures what it saves.  False restores the model's own loss (the benchmark's baseline).
LOGITS_AT_LABELS_ONLY = True


def label_positions(model, inputs) -> "torch.Tensor | None":
    """Where the next token is a trained label, as the boolean mask `logits_to_keep` takes (the
    loss here and Day 4's reference perplexity project only these positions); None
    where the model's own loss must be used (no labels, a model without `logits_to_keep`, a peft
    prompt-learning method other than prefix / prompt tuning)."""
    import inspect

    labels = inputs.get("labels")
    if not LOGITS_AT_LABELS_ONLY or labels is None or "logits_to_keep" in inputs:
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return None
    # token t predicts label t+1: the same shift as transformers' ForCausalLMLoss
    keep = torch.nn.functional.pad(labels[:, 1:] != -100, (0, 1), value=False)
    config = getattr(model, "active_peft_config", None)
    if config is not None and config.is_prompt_learning:
        if config.peft_type in ("PROMPT_TUNING", "P_TUNING"):  # virtual tokens are prepended to the row
            keep = torch.cat([keep.new_zeros(keep.shape[0], config.num_virtual_tokens), keep], dim=1)
        elif config.peft_type != "PREFIX_TUNING":  # prefix tuning keeps the row (its prefix is in the KV cache)
            return None
    return keep


def _trainer_class():
    from transformers import Trainer

    class CourseTrainer(Trainer):
        """Trainer that keeps evaluation time apart, so tokens/s measures training alone, and
        projects only the positions that carry a label onto the vocabulary
        (`LOGITS_AT_LABELS_ONLY`)."""
        eval_seconds = 0.0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            keep = label_positions(model, inputs) if self.label_smoother is None and self.compute_loss_func is None else None
            if keep is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            targets = labels[:, 1:][keep[:, -labels.shape[1]:][:, :-1]]
            outputs = model(**inputs, logits_to_keep=keep)
            # what transformers' fixed_cross_entropy does: a sum over the accumulated batch's
            # label count when the Trainer passes it, else the mean over this batch's labels
            if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                loss = torch.nn.functional.cross_entropy(outputs.logits.float(), targets.to(outputs.logits.device),
                                                         reduction="sum")
                loss = loss / (num_items_in_batch.to(loss.device) if torch.is_tensor(num_items_in_batch)
                               else num_items_in_batch)
                if self.args.average_tokens_across_devices:  # as Trainer.compute_loss does
                    loss = loss * (self.accelerator.num_processes // self.get_tp_size()
                                   if self.args.n_gpu <= 1 else self.args.n_gpu)
            else:
                loss = torch.nn.functional.cross_entropy(outputs.logits.float(), targets.to(outputs.logits.device))
            return (loss, outputs) if return_outputs else loss

        def evaluate(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.eval_seconds += time.perf_counter() - t0

    return CourseTrainer


def validation_steps(max_steps: int, eval_every: int) -> list[int]:
    """The steps at which `train` measures validation loss in a fresh run: 0 (`eval_on_start`),
    every `eval_every` steps, and the last step (transformers' DefaultFlowCallback evaluates a last
    step that is not a multiple).  tests/test_regularisation.py checks it against a real run."""
    if max_steps <= 0 or eval_every <= 0:
        raise ValueError(f"max_steps and eval_every must be positive, got {max_steps} and {eval_every}")
    every = min(eval_every, max_steps)
    return sorted({0, *range(every, max_steps + 1, every), max_steps})


def training_arguments(profile: Profile, output_dir, max_steps: int, learning_rate: float, seed: int,
                       batching: str, save_every: int | None, progress: bool, **overrides):
    """The course's TrainingArguments; `overrides` replace any of them by name (`weight_decay=0.1`,
    `optim="paged_adamw_8bit"`, `eval_steps=2`), checked by TrainingArguments itself."""
    from transformers import TrainingArguments

    arguments = dict(
        output_dir=str(output_dir), max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=profile.batch_size, per_device_eval_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum, lr_scheduler_type="cosine", warmup_steps=max(1, max_steps // 20),
        weight_decay=0.0, max_grad_norm=1.0, seed=seed, data_seed=seed,
        logging_steps=max(1, min(5, max_steps // 10)), logging_first_step=True,
        # step 0 too: the validation curve starts where training starts (train() turns it off on resume)
        eval_strategy="steps", eval_steps=min(profile.eval_every, max_steps), eval_on_start=True,
        save_strategy="steps", save_steps=save_every or profile.save_every, save_total_limit=2,
        # fp16 / bf16 mixed precision follows the hardware (never bf16 on a T4); fp32 on CPU.
        fp16=profile.compute_dtype == torch.float16, bf16=profile.compute_dtype == torch.bfloat16,
        use_cpu=profile.device == "cpu", dataloader_num_workers=0, dataloader_pin_memory=False,
        include_num_input_tokens_seen="non_padding",
        train_sampling_strategy="group_by_length" if batching == "bucketed" else "random",
        activation_checkpointing=profile.gradient_checkpointing,  # transformers 5.23's name (was gradient_*)
        activation_checkpointing_kwargs={"use_reentrant": False},
        report_to="none", disable_tqdm=not progress,
        # evaluation needs only the loss: without this the Trainer gathers every batch's logits
        # (49,152 floats per labelled position on SmolLM2) for metrics nobody computes
        prediction_loss_only=True,
        remove_unused_columns=False,  # our dataset is a plain list of dicts
    )
    unknown = sorted(set(overrides) - set(TrainingArguments.__dataclass_fields__))
    if unknown:
        raise ValueError(f"trainer_args: {', '.join(unknown)} is not a TrainingArguments field")
    arguments.update(overrides)
    return TrainingArguments(**arguments)


def _write_json(path: Path, data: dict) -> None:
    """Write-then-rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _first_evaluation_recorder(path: Path):
    """A callback that keeps the run's first evaluation (transformers' `eval_on_start`: step 0,
    before any update) and writes it to `path` at once, so a run killed later, then resumed, still
    reports its loss before training."""
    from transformers import TrainerCallback

    class RecordFirstEvaluation(TrainerCallback):
        eval_loss = None

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.eval_loss is None and metrics and "eval_loss" in metrics:
                self.eval_loss = metrics["eval_loss"]
                if state.is_world_process_zero:  # under `accelerate launch` every rank gets here
                    _write_json(path, {"eval_loss": self.eval_loss})

    return RecordFirstEvaluation()


def train(model, tokenizer, train_features: list[dict], eval_features: list[dict], profile: Profile,
          output_dir, *, max_steps: int | None = None, learning_rate: float | None = None,
          batching: str = "padded", resume: bool = True,
          save_every: int | None = None, seed: int = 0, progress: bool = True,
          print_report: bool = True, callbacks=None, report_to=None,
          dropped_too_long: int = 0, trainer_args: dict | None = None) -> TrainResult:
    """Train `model` (already a PeftModel) and return it with its loss history and report.

    Validation loss is measured at step 0, every `profile.eval_every` steps and at the last step:
    one curve in `trainer.state.log_history` (and `TrainResult.history`).  With `resume=True` and a
    checkpoint in `output_dir`, training continues from the last checkpoint (a Colab disconnect
    costs at most `save_every` steps).  `dropped_too_long`: examples the caller dropped while
    tokenizing, carried in the report.  `trainer_args`: TrainingArguments to replace by name
    (`{"weight_decay": 0.1, "optim": "paged_adamw_8bit"}`)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    max_steps = max_steps or profile.max_steps
    last = last_complete_checkpoint(output_dir) if resume else None
    tokens_before = _tokens_seen_at(last)  # read now: checkpoint rotation may delete `last` later
    before_file = output_dir / "eval_loss_before.json"
    eval_before = json.loads(before_file.read_text())["eval_loss"] if last and before_file.exists() else None
    overrides = dict(trainer_args or {})
    if eval_before is not None:  # a resumed run measured step 0 in its first session
        overrides.setdefault("eval_on_start", False)
    args = training_arguments(profile, output_dir, max_steps, learning_rate or profile.learning_rate, seed,
                              batching, save_every, progress, **overrides)
    if report_to:  # e.g. "tensorboard": event files under output_dir/runs
        args.report_to = [report_to] if isinstance(report_to, str) else list(report_to)
    if any(type(cb).__name__ == "EarlyStoppingCallback" for cb in callbacks or ()):
        # early stopping compares validation losses and ends on the best checkpoint, not the last
        args.load_best_model_at_end, args.metric_for_best_model, args.greater_is_better = True, "eval_loss", False
    first_eval = _first_evaluation_recorder(before_file)
    trainer = _trainer_class()(model=model, args=args, train_dataset=FeatureDataset(train_features),
                               eval_dataset=FeatureDataset(eval_features), processing_class=tokenizer,
                               data_collator=make_collator(tokenizer, batching),
                               callbacks=[*(callbacks or ()), first_eval])
    for cb in trainer.callback_handler.callbacks:  # the evaluation at step 0 logs too: same folder
        if type(cb).__name__ == "TensorBoardCallback" and cb.logging_dir is None:
            cb.logging_dir = str(output_dir / "runs")
    if not progress:  # quiet runs (sweeps, benchmarks): no per-step log dicts either
        from transformers import PrinterCallback
        trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        if eval_before is None and not args.eval_on_start:  # asked for no step-0 point: measure it apart
            eval_before = trainer.evaluate()["eval_loss"]
        trainer.train(resume_from_checkpoint=last)
        eval_before = eval_before if eval_before is not None else first_eval.eval_loss
        evals = [row for row in trainer.state.log_history if "eval_loss" in row]
        if args.load_best_model_at_end and trainer.state.best_metric is not None:
            eval_after = trainer.state.best_metric  # the checkpoint the Trainer restored
        elif evals and evals[-1]["step"] == trainer.state.global_step:
            eval_after = evals[-1]["eval_loss"]  # the Trainer evaluates the last step itself
        else:
            eval_after = trainer.evaluate()["eval_loss"]
    wall = time.perf_counter() - t0
    train_s = max(wall - trainer.eval_seconds, 1e-9)
    # Only this session's tokens: a resumed run restores the counter from the checkpoint.
    tokens = int(trainer.state.num_input_tokens_seen) - tokens_before
    report = TrainReport(steps=trainer.state.global_step, wall_s=wall, train_s=train_s, tokens=tokens,
                         tokens_per_s=tokens / train_s, peak_memory_mb=mem.peak_mb, memory_kind=mem.kind,
                         eval_loss_before=eval_before, eval_loss_after=eval_after,
                         dropped_too_long=dropped_too_long, resumed_from=last)
    if trainer.is_world_process_zero():  # one writer: two ranks writing one file interleave
        _write_json(output_dir / "report.json", asdict(report))
    if print_report:
        print(report)
    return TrainResult(model, trainer, LossHistory.from_log(trainer.state.log_history), report)


def run_qlora(profile: Profile, output_dir, *, r: int | None = None, alpha: int | None = None,
              max_steps: int | None = None, learning_rate: float | None = None,
              batching: str = "padded", resume: bool = True, save_every: int | None = None,
              progress: bool = True, quantization: str | None = "profile", seed: int = 0) -> TrainResult:
    """The whole pipeline in one call: data -> tokenizer -> 4-bit model -> LoRA -> train.

    `quantization`: the frozen base's, "nf4" (QLoRA), "int8" or None (plain LoRA); by default the
    profile's (`Profile.quantization`: NF4 everywhere but the laptop profile, which trains plain LoRA)."""
    from peft import get_peft_model

    from loraweek.data import chat, schema
    from loraweek.models import lora_config, load_model, load_tokenizer, prepare_for_qlora

    if quantization == "profile":
        quantization = profile.quantization
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(profile)
    splits = schema.load_splits()
    train_feats, dropped = chat.tokenize_examples(tokenizer, splits["train"][: profile.train_examples], profile.max_seq_len)
    eval_feats, dropped_eval = chat.tokenize_examples(tokenizer, splits["validation"][: profile.eval_examples], profile.max_seq_len)
    model = load_model(profile, quantization=quantization)
    if quantization is not None:
        model = prepare_for_qlora(model, profile)
    model = get_peft_model(model, lora_config(profile, r=r, alpha=alpha))
    result = train(model, tokenizer, train_feats, eval_feats, profile, output_dir, max_steps=max_steps,
                   learning_rate=learning_rate, batching=batching,
                   resume=resume, save_every=save_every, seed=seed, progress=progress,
                   dropped_too_long=dropped + dropped_eval)
    return result


def main(argv=None):
    from loraweek.profiles import get_profile

    p = argparse.ArgumentParser(description="QLoRA fine-tuning of the course model on the helpdesk data")
    p.add_argument("--profile", default=None, help="ci / laptop / colab / gpu (default: from the hardware)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--rank", type=int)
    p.add_argument("--no-resume", action="store_true")
    a = p.parse_args(argv)
    result = run_qlora(get_profile(a.profile), a.output_dir, r=a.rank, max_steps=a.max_steps,
                       learning_rate=a.learning_rate, resume=not a.no_resume, save_every=a.save_every,
                       progress=False)
    if result.trainer.is_world_process_zero():  # under `accelerate launch` every rank gets here: save once
        result.model.save_pretrained(Path(a.output_dir) / "adapter")


if __name__ == "__main__":
    main()
