"""The reference LoRA layer: starts as the base, matches peft, merges exactly."""
import copy

import peft
import pytest
import torch
from torch import nn

from loraweek.lora import layer as L


class Wrap(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.proj = lin

    def forward(self, x):
        return self.proj(x)


def test_identity_at_init_and_only_adapters_train():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = L.LoRALinear(base, r=3, alpha=6, dropout=0.2).eval()
    x = torch.randn(4, 12)
    assert torch.equal(layer(x), base(x))
    assert sorted(n for n, p in layer.named_parameters() if p.requires_grad) == ["A", "B"]
    assert layer.scaling == 2.0
    with pytest.raises(ValueError):
        L.LoRALinear(base, r=0)


def test_matches_peft_and_merges():
    torch.manual_seed(0)
    base = nn.Linear(16, 10)
    layer = L.LoRALinear(base, r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_()
    pm = peft.get_peft_model(Wrap(copy.deepcopy(base)), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["proj"]))
    with torch.no_grad():
        pm.base_model.model.proj.lora_A["default"].weight.copy_(layer.A)
        pm.base_model.model.proj.lora_B["default"].weight.copy_(layer.B)
    x = torch.randn(2, 5, 16)
    assert torch.allclose(layer.eval()(x), pm.eval()(x), atol=1e-5)
    assert torch.allclose(layer.merge()(x), layer(x), atol=1e-5)


def test_inject_and_count_match_formula_and_peft():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    mine, theirs = Qwen2ForCausalLM(cfg), Qwen2ForCausalLM(cfg)
    targets = ["q_proj", "v_proj", "down_proj"]
    formula = L.lora_param_formula(mine, targets, 4)
    names = L.inject_lora(mine, targets, lambda lin: L.LoRALinear(lin, r=4, alpha=8))
    assert len(names) == 6 and L.count_parameters(mine)[0] == formula
    pm = peft.get_peft_model(theirs, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    assert L.count_parameters(mine) == pm.get_nb_trainable_parameters()
    assert not L.target_matches("model.layers.0.self_attn.q_proj", ["proj"])
