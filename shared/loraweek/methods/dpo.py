"""Preference tuning (DPO) on top of the course's SFT adapter, with TRL's `DPOTrainer` and peft.

The policy is the SFT model (base + the course adapter, merged) with a *new* LoRA adapter; the
reference is that same model with the new adapter switched off (`ref_model=None` on a peft model:
TRL wraps the reference forward in peft's `disable_adapter`), so it costs no second copy of the
weights.  `run_dpo(..., reference="explicit")` trains the same run against a frozen deep copy
instead, which is what a reference costs without adapters; the two must give the same losses.

`dpo_loss` is the formula (the notebook's exercise); `trl_dpo_loss` runs TRL's own
`DPOTrainer._compute_loss` on given log-probabilities, so the formula is checked against the
library rather than against itself.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from loraweek.profiles import Profile

REFERENCES = ("adapter_off", "explicit")
BETA = 0.1          # TRL's default and the DPO paper's (arXiv:2305.18290, section 6)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"beta: expected a number > 0 (the strength of the pull towards the reference), got {beta!r}")
    return float(beta)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """Mean of -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) over the pairs (sequence log-probs)."""
    beta = check_beta(beta)
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


class _Gather:
    """The one-process accelerator `_compute_loss` reduces its metrics with."""
    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


def trl_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """TRL's sigmoid DPO loss, computed by `DPOTrainer._compute_loss` itself on these log-probabilities.

    Each sequence is given one completion token whose log-prob is the sequence's, and precomputed
    reference log-probs; TRL then sums, subtracts and applies its loss exactly as in training."""
    from trl import DPOTrainer

    beta = check_beta(beta)
    logps = torch.cat([policy_chosen, policy_rejected]).float().reshape(-1, 1)
    n = logps.shape[0]
    outputs = SimpleNamespace(log_probs=logps, entropy=torch.zeros(n, 1), mean_logits=torch.zeros(n, 1),
                              is_top1=torch.zeros(n, 1, dtype=torch.bool))

    class _Policy(torch.nn.Module):
        def forward(self, **kwargs):
            return outputs

    trainer = SimpleNamespace(
        model=SimpleNamespace(training=False), accelerator=_Gather(), aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0],
        beta=beta, use_weighting=False, label_smoothing=0.0, _total_train_tokens=0, _tp_size=1,
        _metrics={"train": _DefaultLists(), "eval": _DefaultLists()})
    inputs = {"input_ids": torch.zeros(n, 2, dtype=torch.long), "attention_mask": torch.ones(n, 2, dtype=torch.long),
              "completion_mask": torch.tensor([[0, 1]] * n), "ref_chosen_logps": ref_chosen.float(),
              "ref_rejected_logps": ref_rejected.float()}
    return DPOTrainer._compute_loss(trainer, _Policy(), inputs, return_outputs=False)


class _DefaultLists(dict):
    def __missing__(self, key):
        self[key] = []
        return self[key]


def sft_model(profile: Profile):
    """(the course's SFT model with its adapter merged into an unquantized base, tokenizer).

    Merged so that a new DPO adapter sits on top of it and switching that adapter off gives the SFT
    model back: DPO's reference.  (Switching the *SFT* adapter off would give the base model.)"""
    from peft import PeftModel

    from loraweek.models.finetuned import course_adapter, load_base_model

    base, tokenizer = load_base_model(profile, quantization=None)
    merged = PeftModel.from_pretrained(base, course_adapter(profile, progress=False)).merge_and_unload()
    tokenizer.padding_side = "left"  # DPOTrainer's requirement (generation pads left too)
    return merged.eval(), tokenizer


def lora_config(profile: Profile, model):
    from peft import LoraConfig

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    return LoraConfig(r=profile.lora_r, lora_alpha=profile.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=[t for t in LORA_TARGETS if t in names])


def _quiet_datasets() -> None:
    # TRL tokenizes with datasets.map: one progress bar per split and step, nothing to act on
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()


def dpo_config(profile: Profile, output_dir, *, steps: int, beta: float, learning_rate: float, seed: int = 0):
    from trl import DPOConfig

    with warnings.catch_warnings():
        # TRL's config always sets `gradient_checkpointing`, which transformers 5 renamed: nothing to act on
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*", category=FutureWarning)
        return DPOConfig(
            output_dir=str(output_dir), max_steps=steps, beta=check_beta(beta), learning_rate=learning_rate,
            per_device_train_batch_size=profile.batch_size, per_device_eval_batch_size=profile.batch_size,
            gradient_accumulation_steps=profile.grad_accum, lr_scheduler_type="constant", warmup_steps=0,
            max_length=profile.max_seq_len, logging_steps=1, save_strategy="no", eval_strategy="no",
            seed=seed, data_seed=seed, use_cpu=profile.device == "cpu", report_to="none", disable_tqdm=True,
            bf16=profile.compute_dtype == torch.bfloat16, fp16=profile.compute_dtype == torch.float16,
            gradient_checkpointing=profile.gradient_checkpointing, dataloader_num_workers=0,
            dataloader_pin_memory=False)


@dataclass
class DPORun:
    reference: str
    trainer: object
    losses: list            # training loss per step, as TRL logged it
    s_per_step: float       # median wall time of the steps after the first
    peak_added_mb: float    # measured (CUDA allocated, or CPU RSS sampled: noisy in a long process)
    peak_mb: float
    memory_kind: str
    reference_weights_mb: float  # weights held only for the reference (0 with the adapter switched off)
    log: list = field(default_factory=list, repr=False)

    @property
    def model(self):
        return self.trainer.model


def _step_timer():
    """A TrainerCallback recording each optimizer step's wall time (the first one also warms up)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t0 = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t0)

    return StepTimer()


def _weights_mb(model) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2 ** 20


def run_dpo(sft, tokenizer, train_dataset, profile: Profile, output_dir, *, reference: str = "adapter_off",
            steps: int, beta: float = BETA, learning_rate: float, seed: int = 0) -> DPORun:
    """Train a new LoRA adapter on `sft` (a copy is made: `sft` itself is untouched) with DPO.

    reference="adapter_off": ref_model=None, TRL disables the adapter for the reference forward;
    reference="explicit": a frozen deep copy of `sft` is passed as ref_model."""
    from transformers import PrinterCallback
    from trl import DPOTrainer

    from loraweek.memory import PeakMemory

    if reference not in REFERENCES:
        raise ValueError(f"reference: expected one of {', '.join(REFERENCES)}, got {reference!r}")
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps!r}")
    _quiet_datasets()
    with PeakMemory() as mem:
        # TRL adds the adapter itself (seeded by args.seed, so both runs start from the same A matrices).  A
        # peft model passed in would count as an already-trained adapter, which TRL copies into a "ref" adapter.
        policy = copy.deepcopy(sft)
        ref = copy.deepcopy(sft).eval().requires_grad_(False) if reference == "explicit" else None
        trainer = DPOTrainer(model=policy, ref_model=ref, processing_class=tokenizer, train_dataset=train_dataset,
                             peft_config=lora_config(profile, policy),
                             args=dpo_config(profile, output_dir, steps=steps, beta=beta,
                                             learning_rate=learning_rate, seed=seed))
        trainer.remove_callback(PrinterCallback)  # the course prints its own summary of the run
        timer = _step_timer()
        trainer.add_callback(timer)
        trainer.train()
    steady = timer.times[1:] or timer.times  # the same steps compare across runs of different lengths
    log = [row for row in trainer.state.log_history if "loss" in row]
    return DPORun(reference, trainer, [row["loss"] for row in log], statistics.median(steady), mem.added_mb, mem.peak_mb,
                  mem.kind, 0.0 if ref is None else _weights_mb(ref), log)


@torch.no_grad()
def _completion_logps(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    token_logps = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(-1)


@torch.no_grad()
def pair_scores(trainer, dataset, reference_model=None) -> dict:
    """Per pair: sequence log-probs of chosen and rejected under the policy and the reference
    (the policy with its adapter disabled, or `reference_model`), their DPO rewards and lengths.

    Computed here with plain forwards (not TRL's fused head) on TRL's tokenization and collator."""
    _quiet_datasets()
    prepared = trainer._prepare_dataset(dataset, trainer.processing_class, trainer.args, "scores")
    prepared = prepared.remove_columns([c for c in prepared.column_names
                                        if c not in ("prompt_ids", "chosen_ids", "rejected_ids")])
    model = trainer.model
    model.eval()
    device = next(model.parameters()).device
    out = {k: [] for k in ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected",
                           "chosen_tokens", "rejected_tokens")}
    bs = trainer.args.per_device_eval_batch_size
    for start in range(0, len(prepared), bs):
        batch = trainer.data_collator([prepared[i] for i in range(start, min(start + bs, len(prepared)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        pol = _completion_logps(model, batch)
        if reference_model is None:
            with model.disable_adapter():
                ref = _completion_logps(model, batch)
        else:
            ref = _completion_logps(reference_model, batch)
        lengths = batch["completion_mask"].sum(-1)
        for key, value in (("policy", pol), ("ref", ref)):
            c, r = value.chunk(2)
            out[f"{key}_chosen"] += c.cpu().tolist()
            out[f"{key}_rejected"] += r.cpu().tolist()
        c, r = lengths.chunk(2)
        out["chosen_tokens"] += c.cpu().tolist()
        out["rejected_tokens"] += r.cpu().tolist()
    return {k: torch.tensor(v) for k, v in out.items()}


def preference_metrics(scores: dict, beta: float = BETA, kinds=None) -> dict:
    """Preference accuracy (chosen reward > rejected reward), mean reward margin, and how often
    the policy itself gives the chosen answer the higher log-prob; per rejection kind when given."""
    beta = check_beta(beta)
    chosen = beta * (scores["policy_chosen"] - scores["ref_chosen"])
    rejected = beta * (scores["policy_rejected"] - scores["ref_rejected"])
    margin = chosen - rejected
    result = {"pairs": len(margin), "accuracy": float((margin > 0).float().mean()), "margin": float(margin.mean()),
              "policy_prefers_chosen": float((scores["policy_chosen"] > scores["policy_rejected"]).float().mean()),
              "chosen_logp": float(scores["policy_chosen"].mean()),
              "loss": float(dpo_loss(scores["policy_chosen"], scores["policy_rejected"], scores["ref_chosen"],
                                     scores["ref_rejected"], beta))}
    if kinds is not None:
        kinds = list(kinds)
        result["margin_by_kind"] = {k: float(margin[[i for i, x in enumerate(kinds) if x == k]].mean())
                                    for k in dict.fromkeys(kinds)}
    return result


def task_scores(model, tokenizer, examples, max_new_tokens: int) -> dict:
    """The routing task on validation messages: valid JSON, intent macro-F1, language accuracy."""
    from loraweek.metrics.answers import score_answers
    from loraweek.generation import generate_answers

    scores = score_answers(examples, generate_answers(model, tokenizer, examples, max_new_tokens=max_new_tokens))
    return {k: scores[k] for k in ("json_valid", "intent_macro_f1", "language_accuracy")}
