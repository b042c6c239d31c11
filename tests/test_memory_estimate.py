"""The reference training-memory estimator against the QLoRA paper's arithmetic."""
import math

import pytest

from loraweek.lora import memory_estimate as M


def test_full_ft_is_12_bytes_per_param_as_in_the_qlora_paper():
    est = M.estimate_training_memory(65e9, "full")
    assert est["weights"] == pytest.approx(130.0) and est["gradients"] == pytest.approx(130.0)
    assert est["optimizer"] == pytest.approx(520.0)
    assert est["total"] == pytest.approx(780.0)            # "more than 780 GB" for 65B
    master = M.estimate_training_memory(65e9, "full", master_weights=True)
    assert master["total"] == pytest.approx(65e9 * 16 / 1e9)


def test_double_quantization_bits():
    assert M.ABSMAX_BITS == pytest.approx(0.5)
    assert M.DQ_ABSMAX_BITS == pytest.approx(0.127, abs=5e-4)
    assert M.NF4_DQ_BYTES == pytest.approx(4.127 / 8, abs=1e-4)
    assert M.NF4_DQ_BYTES * 8 == pytest.approx(4.126953125)


def test_lora_and_qlora_parts_add_up():
    lora = M.estimate_training_memory(7e9, "lora", trainable_params=40e6, activation_gb=1.5)
    assert lora["weights"] == pytest.approx(14.08)
    assert lora["gradients"] == pytest.approx(0.08) and lora["optimizer"] == pytest.approx(0.32)
    assert lora["total"] == pytest.approx(14.08 + 0.08 + 0.32 + 1.5)
    qlora = M.estimate_training_memory(7e9, "qlora", trainable_params=40e6)
    assert qlora["weights"] == pytest.approx(7e9 * M.NF4_DQ_BYTES / 1e9 + 0.08)
    with pytest.raises(ValueError):
        M.estimate_training_memory(1e9, "prefix")


def test_model_shapes_match_public_parameter_counts():
    assert M.SHAPES["0.5B"].n_params == pytest.approx(494e6, rel=0.01)      # Qwen2.5-0.5B: 494M
    assert M.SHAPES["7B"].n_params == pytest.approx(6.74e9, rel=0.01)       # LLaMA-7B: 6.74B
    assert M.SHAPES["65B"].n_params == pytest.approx(65.2e9, rel=0.01)      # LLaMA-65B: 65.2B
    # r=64 on all linear layers of LLaMA-7B: the ~160M adapter of the QLoRA setup
    assert M.SHAPES["7B"].lora_params(64) == 159_907_840


def test_qlora_65b_fits_48gb_and_full_ft_does_not_fit_anything():
    s = M.SHAPES["65B"]
    act = M.activation_gb(s)
    for r in (16, 64):
        est = M.estimate_training_memory(s.n_params, "qlora", s.lora_params(r), act)
        assert 30 < est["total"] < 48
    rows = {(r["size"], r["method"]): r for r in M.memory_table()}
    assert rows[("65B", "full")]["fits"] == [] and rows[("65B", "lora")]["fits"] == []
    assert "48 GB card (A6000/L40S)" in rows[("65B", "qlora")]["fits"]
    assert "T4 (15 GB)" in rows[("7B", "qlora")]["fits"]
    assert "T4 (15 GB)" not in rows[("7B", "lora")]["fits"]
    assert "65B" in M.format_table(list(rows.values())) or "LLaMA-65B" in M.format_table(list(rows.values()))


def test_activation_estimate_is_smaller_with_checkpointing():
    s = M.SHAPES["7B"]
    assert M.activation_gb(s, checkpointing=True) < M.activation_gb(s, checkpointing=False)
    assert math.isclose(M.activation_gb(s, batch=2), 2 * M.activation_gb(s, batch=1), rel_tol=0.2)


def test_memory_table_uses_the_given_estimator():
    calls = []

    def fake(n_params, method, trainable_params=0, activation_gb=0.0, master_weights=False):
        calls.append(method)
        return dict(weights=1.0, gradients=0.0, optimizer=0.0, activations=0.0, total=1.0)

    rows = M.memory_table(estimator=fake, sizes=("7B",))
    assert calls == ["full", "lora", "qlora"] and all(r["total"] == 1.0 for r in rows)
