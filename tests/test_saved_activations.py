"""Day 2's out-of-memory trap counts the tensors autograd saves; on a laptop it projects a large
batch from two small slices.  The projection must equal the direct count on the real QLoRA path."""
import sys
from pathlib import Path

import pytest
from peft import get_peft_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import chat, schema  # noqa: E402
from loraweek.memory import projected_saved_activation_mb, saved_activation_mb  # noqa: E402
from loraweek.models import load_model, load_tokenizer, lora_config, prepare_for_qlora  # noqa: E402
from loraweek.training import make_collator  # noqa: E402


@pytest.fixture(scope="module")
def probe(ci):
    tokenizer = load_tokenizer(ci)
    model = get_peft_model(prepare_for_qlora(load_model(ci, quantization=ci.quantization), ci), lora_config(ci))
    features, _ = chat.tokenize_examples(tokenizer, schema.load_split("train")[:8], ci.max_seq_len)
    batch = make_collator(tokenizer, "padded")(features)
    assert (batch["attention_mask"] == 0).any(), "want padding in the batch, as in training"
    return model, batch


def test_projection_from_two_slices_equals_the_direct_count(probe):
    model, batch = probe
    direct = saved_activation_mb(model, batch)
    three_rows = saved_activation_mb(model, {k: v[:3] for k, v in batch.items()})
    assert direct > 2 * three_rows, "the count should grow with the batch"
    assert projected_saved_activation_mb(model, batch) == pytest.approx(direct, rel=0.005)


def test_projection_holds_with_gradient_checkpointing(probe):
    model, batch = probe
    plain = saved_activation_mb(model, batch)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    try:
        direct = saved_activation_mb(model, batch)
        assert direct < plain, "checkpointing keeps fewer tensors"
        assert projected_saved_activation_mb(model, batch) == pytest.approx(direct, rel=0.005)
    finally:
        model.activation_checkpointing_disable()


def test_a_batch_no_larger_than_the_slices_is_counted_directly(probe):
    model, batch = probe
    small = {k: v[:3] for k, v in batch.items()}
    assert projected_saved_activation_mb(model, small) == saved_activation_mb(model, small)
