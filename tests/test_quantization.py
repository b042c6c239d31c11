"""bitsandbytes int8 / NF4 / NF4+DQ on CPU: bytes per parameter and reconstruction error."""
import pytest
import torch

from loraweek.lora import quantization as Q


@pytest.fixture(scope="module")
def weight():
    torch.manual_seed(0)
    return torch.randn(256, 128) * 0.02


def test_nf4_levels_are_the_papers_16_values():
    levels = Q.nf4_levels()
    assert levels.shape == (16,) and levels[0] == -1 and levels[-1] == 1 and levels[7] == 0
    assert levels[8].item() == pytest.approx(0.0796, abs=1e-4)
    assert torch.all(levels[1:] > levels[:-1])


def test_bytes_per_param(weight):
    n = weight.numel()
    assert Q.quantize_weight(weight, "int8").n_bytes == n + 4 * weight.shape[0]   # int8 + fp32 row scale
    assert Q.quantize_weight(weight, "nf4").bits_per_param == pytest.approx(4.5)   # 4 + 32/64
    dq = Q.quantize_weight(weight, "nf4_dq")
    assert dq.bits_per_param == pytest.approx(4.127, abs=0.01)                     # 4 + 8/64 + 32/(64*256)
    assert Q.quantize_weight(weight, "fp4").bits_per_param == pytest.approx(4.5)
    with pytest.raises(ValueError):
        Q.quantize_weight(weight, "int4")


def test_errors_are_ordered_and_dq_is_free(weight):
    err = {m: Q.relative_error(weight, Q.quantize_weight(weight, m).dequantized) for m in Q.METHODS}
    assert err["int8"] < 0.02 < err["nf4"] < err["fp4"] < 0.2
    assert err["nf4_dq"] == pytest.approx(err["nf4"], rel=0.02)
    assert Q.quantize_weight(weight, "nf4").dequantized.shape == weight.shape


def test_nf4_uses_its_levels_evenly_on_gaussian_weights(weight):
    nf4 = Q.code_entropy_bits(Q.quantize_weight(weight, "nf4").codes)
    fp4 = Q.code_entropy_bits(Q.quantize_weight(weight, "fp4").codes)
    assert 3.8 < nf4 <= 4.0 and fp4 < nf4
    assert Q.code_entropy_bits(torch.zeros(100, dtype=torch.long)) == 0.0


def test_unpack_4bit_high_nibble_first():
    assert Q.unpack_4bit(torch.tensor([0x1F, 0xA2], dtype=torch.uint8), 4).tolist() == [1, 15, 10, 2]


def test_block_normalized_in_unit_interval(weight):
    b = Q.block_normalized(weight)
    assert b.abs().max() == pytest.approx(1.0) and b.numel() == weight.numel()


def test_compare_outputs():
    r = Q.compare_outputs(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 0.0]]))
    assert r == {"relative_error": pytest.approx(0.8), "max_abs_error": 4.0, "top1_agreement": 0.0}
    with pytest.raises(ValueError):
        Q.compare_outputs(torch.zeros(2, 3), torch.zeros(3, 2))


def test_linear_weight_bytes_counts_quantization_constants():
    import bitsandbytes as bnb

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128, bias=False))
    model.lm_head = torch.nn.Linear(128, 10)  # ignored, as bitsandbytes keeps it unquantized
    assert Q.linear_weight_bytes(model)["bytes_per_param"] == 4.0
    q = bnb.nn.Linear4bit(64, 128, bias=False, quant_type="nf4", compress_statistics=False)
    q.weight = bnb.nn.Params4bit(model[0].weight.data.clone(), requires_grad=False, quant_type="nf4",
                                 compress_statistics=False)
    q = q.to("cpu")  # moving to a device is what quantizes a Params4bit
    stats = Q.linear_weight_bytes(torch.nn.Sequential(q))
    assert stats["params"] == 64 * 128 and stats["bytes_per_param"] == pytest.approx(0.5625)
