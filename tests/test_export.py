"""Merge and export (loraweek.serving.export) and the vLLM loadability check (vllm_check).

Real pieces throughout: the course's trained ci adapter, a real merge into an fp32 reload and
into the 4-bit NF4 base (bitsandbytes on CPU), and real peft adapters for the vLLM check.
"""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import chat, schema  # noqa: E402
from loraweek.models.finetuned import course_adapter  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402
from loraweek.serving import export, vllm_check  # noqa: E402


@pytest.fixture(scope="module")
def profile():
    return get_profile("ci")


@pytest.fixture(scope="module")
def adapter(profile):
    return course_adapter(profile, progress=False)


@pytest.fixture(scope="module")
def prompts(profile):
    from loraweek.models import load_tokenizer

    tok = load_tokenizer(profile)
    test = schema.load_split("test")[:4]
    return [tok.apply_chat_template(chat.build_messages(ex, with_answer=False), tokenize=False,
                                    add_generation_prompt=True) for ex in test]


@pytest.fixture(scope="module")
def merged_dir(profile, adapter, tmp_path_factory):
    return export.export_merged(profile, adapter, tmp_path_factory.mktemp("export") / "merged")


def test_export_is_a_plain_model_with_template_and_end_of_turn_eos(merged_dir):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(merged_dir)
    assert tok.chat_template, "the exported tokenizer lost its chat template"
    gen = GenerationConfig.from_pretrained(merged_dir)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in gen.eos_token_id and gen.pad_token_id == tok.pad_token_id != im_end
    with safe_open(merged_dir / "model.safetensors", framework="pt") as f:
        names = list(f.keys())
    assert names and not any("lora_" in n for n in names), "LoRA layers survived the merge"
    assert not (merged_dir / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert model.config.use_cache and "quantization_config" not in model.config.to_dict()


def test_merged_export_answers_like_the_adapter_and_stops(merged_dir, profile, adapter, prompts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    peft_model, _ = export.attach_adapter(profile, adapter, quantization=None)
    batch = tok(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        out = merged.generate(**batch, max_new_tokens=80, do_sample=False)
        ref = peft_model.generate(**batch, max_new_tokens=80, do_sample=False)
    assert out.tolist() == ref.tolist(), "the merged export generates differently from base + adapter"
    # the generation config alone (no eos argument) makes it stop at the end of the turn
    assert out[0, -1].item() == tok.convert_tokens_to_ids("<|im_end|>"), tok.decode(out[0, batch["input_ids"].shape[1]:])


def test_fp_merge_matches_and_4bit_merge_does_not(profile, adapter, prompts):
    check = export.compare_merges(profile, adapter, prompts)
    assert check.fp.positions == check.nf4.positions > 100
    assert check.fp.max_abs_logit_diff < 1e-3 and check.fp.token_agreement == 1.0, check.fp
    # re-quantizing W + BA to NF4 moves the logits by orders of magnitude more than fp rounding
    assert check.nf4.max_abs_logit_diff > 100 * max(check.fp.max_abs_logit_diff, 1e-6), check
    assert check.nf4.max_abs_logit_diff > 0.05, check.nf4


def test_export_refuses_bad_folders(profile, adapter, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        export.export_merged(profile, tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export.export_merged(profile, adapter, tmp_path / "full")
    with pytest.raises(ValueError, match="texts is empty"):
        export.compare_merges(profile, adapter, [])


def test_course_adapter_is_vllm_loadable(adapter):
    check = vllm_check.check_vllm_adapter(adapter)
    assert check.ok, str(check)
    assert check.rank == get_profile("ci").lora_r <= vllm_check.VLLM_DEFAULT_MAX_LORA_RANK
    command = vllm_check.vllm_serve_command("Qwen/Qwen2.5-0.5B-Instruct", {"router": adapter}, dtype="half")
    assert command.startswith("vllm serve Qwen/Qwen2.5-0.5B-Instruct --enable-lora --lora-modules ")
    assert f"router={adapter}" in command and "--max-lora-rank 16" in command and "--dtype half" in command


@pytest.fixture(scope="module")
def unservable(profile, tmp_path_factory):
    """A real peft adapter vLLM refuses: rank 32, an embedding target, a fully trained lm_head."""
    from peft import LoraConfig, get_peft_model

    from loraweek.models import load_model

    model = get_peft_model(load_model(profile, quantization=None),
                           LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "embed_tokens"],
                                      modules_to_save=["lm_head"]))
    folder = tmp_path_factory.mktemp("vllm") / "bad"
    model.save_pretrained(folder)
    return folder


def test_unservable_adapter_gets_every_reason(unservable):
    check = vllm_check.check_vllm_adapter(unservable)
    assert not check.ok
    text = str(check)
    assert "greater than max_lora_rank 16" in text and "--max-lora-rank 32" in text
    assert "['embed_tokens']" in text and "no LoRA support" in text
    assert "modules_to_save" in text and "lm_head" in text
    assert "lm_head / embed_tokens tensors" in text
    with pytest.raises(ValueError, match="NOT loadable"):
        vllm_check.vllm_serve_command("base", {"bad": unservable})


def test_config_only_problems_and_rank_choice(adapter, tmp_path):
    folder = tmp_path / "dora"
    shutil.copytree(adapter, folder)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg.update(use_dora=True, bias="all", r=64)
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    text = str(vllm_check.check_vllm_adapter(folder))
    assert "DoRA" in text and "bias is 'all'" in text and "--max-lora-rank 64" in text
    assert vllm_check.check_vllm_adapter(folder, max_lora_rank=64).problems != []  # DoRA, bias remain
    assert vllm_check.smallest_max_lora_rank(8) == 16 and vllm_check.smallest_max_lora_rank(33) == 64
    missing = vllm_check.check_vllm_adapter(tmp_path / "nope")
    assert not missing.ok and "does not exist" in missing.problems[0]
    with pytest.raises(ValueError, match="adapter name"):
        vllm_check.vllm_serve_command("base", {"a=b": adapter})


def test_end_of_turn_becomes_an_eos(profile):
    """A base whose generation config stops only on <|endoftext|> (a common export) never stops
    after an answer: the end of the assistant's turn is <|im_end|>."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from loraweek.models import load_tokenizer

    tok = load_tokenizer(profile)
    eot, eos = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    model = SimpleNamespace(generation_config=GenerationConfig(eos_token_id=eos))
    gen = export.end_of_turn_generation_config(model, tok)
    assert gen.eos_token_id == [eot, eos] and gen.pad_token_id == tok.pad_token_id
