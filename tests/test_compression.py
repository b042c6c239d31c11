"""Compression for serving (loraweek.serving.compression): int8, NF4 and magnitude pruning of the
course's real merged ci model (the trained adapter merged into an fp32 reload), on the CPU."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import schema  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402
from loraweek.serving import compression as C  # noqa: E402


@pytest.fixture(scope="module")
def merged_dir(adapter, tmp_path_factory):
    from loraweek.serving.export import export_merged

    return export_merged(get_profile("ci"), adapter, tmp_path_factory.mktemp("compress") / "merged")


@pytest.fixture(scope="module")
def tokenizer(merged_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(merged_dir)


@pytest.fixture(scope="module")
def fp32(merged_dir):
    return C.load_fp32(merged_dir)


def _measure(name, model, tokenizer, tmp_path):
    test = schema.load_split("test")
    return C.measure_variant(name, model, tokenizer, test[:2], speed_messages=[test[0].message], max_new_tokens=24,
                             speed_tokens=4, save_dir=tmp_path / name)


def _logits(model, tokenizer):
    batch = tokenizer(["Tôi muốn hoàn tiền đơn hàng"], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_quantized_models_shrink_generate_and_reload(merged_dir, fp32, tokenizer, tmp_path):
    runs = [_measure("fp32", fp32, tokenizer, tmp_path), _measure("int8", C.quantize_int8(fp32), tokenizer, tmp_path),
            _measure("nf4", C.load_nf4(merged_dir), tokenizer, tmp_path)]
    ref, int8, nf4 = runs
    assert ref.memory_bytes == sum(p.numel() * p.element_size() for p in fp32.parameters()), \
        "fp32: the state dict's bytes are the parameters' bytes (the tied LM head counted once)"
    assert nf4.memory_bytes < int8.memory_bytes < ref.memory_bytes, [r.memory_bytes for r in runs]
    assert nf4.disk_bytes < int8.disk_bytes < ref.disk_bytes, [r.disk_bytes for r in runs]
    for run in runs:
        assert len(run.answers) == 2 and all(isinstance(a, str) and a for a in run.answers), run
        assert run.seconds_per_token > 0
    assert C.agreement(ref, ref) == C.valid_share(ref), "a run agrees with itself wherever its answer is valid"
    assert "int8" in C.table(runs) and "nf4" in C.table(runs)

    reloaded = C.load_int8(merged_dir, tmp_path / "int8")   # the saved file is a usable int8 model
    assert torch.equal(_logits(reloaded, tokenizer), _logits(C.quantize_int8(fp32), tokenizer))
    from transformers import AutoModelForCausalLM
    import bitsandbytes as bnb

    nf4_again = AutoModelForCausalLM.from_pretrained(tmp_path / "nf4", device_map={"": "cpu"})
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in nf4_again.modules()), "the NF4 folder reloads in 4-bit"
    assert torch.isfinite(_logits(nf4_again, tokenizer)).all()


@pytest.mark.parametrize("amount", [0.25, 0.5])
def test_pruning_zeroes_the_smallest_weights_at_the_asked_sparsity(fp32, tokenizer, amount, tmp_path):
    pruned = C.prune_linears(fp32, amount)
    assert C.linear_sparsity(fp32) < 0.01, "the fp32 model itself must be left dense"
    for (name, before), (_, after) in zip(C.prunable_linears(fp32), C.prunable_linears(pruned)):
        zero = after.weight == 0
        assert abs(zero.float().mean().item() - amount) <= 1 / before.weight.numel(), name
        assert before.weight[zero].abs().max() <= before.weight[~zero].abs().min(), f"{name}: not the smallest"
        assert torch.equal(after.weight[~zero], before.weight[~zero]), f"{name}: kept weights changed"
        assert not hasattr(after, "weight_orig"), f"{name}: prune.remove was not applied"
    assert abs(C.linear_sparsity(pruned) - amount) < 0.01
    assert pruned.get_output_embeddings().weight is pruned.get_input_embeddings().weight, "the LM head stays tied"
    run = _measure(f"pruned-{amount}", pruned, tokenizer, tmp_path)
    assert run.memory_bytes == C.memory_bytes(fp32), "unstructured zeros are still stored densely"


def test_bad_input_is_named(tmp_path, fp32):
    with pytest.raises(ValueError, match="amount"):
        C.prune_linears(fp32, 1.5)
    with pytest.raises(FileNotFoundError, match="merged_dir"):
        C.load_fp32(tmp_path)
