"""The course Trainer projects only the positions that carry a label onto the vocabulary
(`training.LOGITS_AT_LABELS_ONLY`): its loss and gradients must be those of the model's own loss,
for every kind of model Days 2-3 train (LoRA, prompt tuning's prepended virtual tokens, prefix
tuning, a plain transformers model) and both batch layouts."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import training  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.models import load_model, load_tokenizer, lora_config  # noqa: E402


@pytest.fixture(scope="module")
def features(ci):
    feats, _ = chat.tokenize_examples(load_tokenizer(ci), schema.load_split("train")[:5], ci.max_seq_len)
    return feats


def _trainer(model, tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    return training._trainer_class()(model=model, args=args)


def _peft(ci, config):
    from peft import get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(ci, quantization=None), config)
    for p in model.parameters():  # non-zero LoRA B, so that the gradients of A are not all zero
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    return model.train()


def _loss_and_grads(loss_fn, model):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout masks for both losses
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return loss.detach(), grads


def _check_equal(model, batch, tmp_path, num_items_in_batch=None):
    trainer = _trainer(model, tmp_path)
    ours, our_grads = _loss_and_grads(
        lambda: trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items_in_batch), model)
    model_kwargs = {"num_items_in_batch": num_items_in_batch} if num_items_in_batch is not None else {}
    ref, ref_grads = _loss_and_grads(lambda: model(**batch, **model_kwargs).loss, model)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    assert our_grads.keys() == ref_grads.keys() and our_grads
    for name, g in ref_grads.items():
        torch.testing.assert_close(our_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():  # and the short path was the one taken: one logits row per trained label
        _, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
    assert outputs.logits.shape == (int((batch["labels"][:, 1:] != -100).sum()), model.config.vocab_size)


@pytest.mark.parametrize("batching", ["padded", "padding_free"])
def test_lora_loss_and_gradients_equal_the_models_own(ci, features, batching, tmp_path):
    model = _peft(ci, lora_config(ci))
    batch = training.make_collator(load_tokenizer(ci), batching)([dict(f) for f in features])
    _check_equal(model, batch, tmp_path)
    # the accumulated-batch normalisation the Trainer uses with gradient accumulation
    _check_equal(model, batch, tmp_path, num_items_in_batch=torch.tensor(3 * int((batch["labels"] != -100).sum())))


def test_most_positions_are_prompt_and_never_projected(ci, features):
    batch = training.make_collator(load_tokenizer(ci), "padded")([dict(f) for f in features])
    assert int((batch["labels"][:, 1:] != -100).sum()) < batch["input_ids"].numel() / 2


def test_the_switch_restores_the_models_own_loss(ci, features, tmp_path, monkeypatch):
    model = _peft(ci, lora_config(ci))
    batch = training.make_collator(load_tokenizer(ci), "padded")([dict(f) for f in features])
    monkeypatch.setattr(training, "LOGITS_AT_LABELS_ONLY", False)
    _, outputs = _trainer(model, tmp_path).compute_loss(model, dict(batch), return_outputs=True)
    assert outputs.logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)


@pytest.mark.parametrize("kind", ["prompt_tuning", "prefix_tuning"])
def test_prompt_learning_methods_keep_their_loss(ci, features, kind, tmp_path):
    from peft import PrefixTuningConfig, PromptTuningConfig

    config = (PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM") if kind == "prompt_tuning"
              else PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    model = _peft(ci, config)
    batch = training.make_collator(load_tokenizer(ci), "padded")([dict(f) for f in features])
    _check_equal(model, batch, tmp_path)


def test_a_plain_transformers_model_keeps_its_loss(ci, features, tmp_path):
    torch.manual_seed(0)
    model = load_model(ci, quantization=None).train()  # full fine-tuning (Day 3's HFT trains every weight)
    batch = training.make_collator(load_tokenizer(ci), "padded")([dict(f) for f in features])
    _check_equal(model, batch, tmp_path)
