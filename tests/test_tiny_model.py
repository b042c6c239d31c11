"""The locally built `ci` model: a real qwen2 checkpoint folder, small, and reproducible.

Building takes ~45 s on 2 idle CPU cores, so the reproducibility test builds ONCE, into a
fresh temporary cache, and compares it with the warm cache ($LORAWEEK_CACHE or the default,
built on first use)."""
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.models import tiny as tiny_model  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402

SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


@pytest.fixture(scope="module")
def warm_folder():
    return tiny_model.ensure_ci_model(verbose=False)


@pytest.fixture(scope="module")
def fresh_folder(tmp_path_factory, warm_folder):
    fresh_cache = tmp_path_factory.mktemp("fresh-loraweek-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORAWEEK_CACHE", str(fresh_cache))
        folder = tiny_model.ensure_ci_model(verbose=False)
    assert folder.parent == fresh_cache and folder != warm_folder
    return folder


@pytest.fixture(scope="module")
def tokenizer(warm_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(warm_folder)


def _sample_texts():
    ex = [e for e in schema.load_split("train") if e.language == "vi"][0]
    en = [e for e in schema.load_split("train") if e.language == "en"][0]
    return [chat.SYSTEM_PROMPT, ex.message, ex.target_json(), en.message, en.reply,
            "Đơn hàng #123 giao chậm 3 ngày rồi ạ! 😡", "<|im_start|>user\nxin chào<|im_end|>\n"]


def test_folder_is_a_qwen2_checkpoint(warm_folder):
    config = json.loads((warm_folder / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["vocab_size"] < 10_000
    assert config["tie_word_embeddings"] is True
    for name in ("tokenizer.json", "tokenizer_config.json", "model.safetensors", "generation_config.json"):
        assert (warm_folder / name).exists(), name
    assert warm_folder.name.startswith("tiny-qwen2-ci-")


def test_tokenizer_has_chatml_special_tokens_and_template(tokenizer, warm_folder):
    for special in SPECIALS:
        ids = tokenizer(special, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{special} must be a single token, got {ids}"
        assert tokenizer.convert_ids_to_tokens(ids[0]) == special
    assert len(tokenizer) < 10_000
    config = json.loads((warm_folder / "config.json").read_text())
    assert len(tokenizer) <= config["vocab_size"]
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["pad_token_id"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template([{"role": "user", "content": "xin chào"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nxin chào<|im_end|>\n<|im_start|>assistant\n"


def test_autotokenizer_reload_encodes_like_the_raw_tokenizer(tokenizer, warm_folder):
    """AutoTokenizer rebuilds a qwen2 tokenizer as Qwen2Tokenizer; it must encode exactly
    like the trained tokenizer.json (same normalizer, pre-tokenizer, merges)."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(warm_folder / "tokenizer.json"))
    for text in _sample_texts():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == raw.encode(text, add_special_tokens=False).ids, text
        assert tokenizer.decode(ids) == text  # byte-level: lossless, Vietnamese and emoji included


def test_two_builds_are_identical(fresh_folder, warm_folder):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    assert fresh_folder.name == warm_folder.name  # same recipe hash
    for name in ("tokenizer.json", "config.json", "tokenizer_config.json", "generation_config.json"):
        assert (fresh_folder / name).read_bytes() == (warm_folder / name).read_bytes(), name
    fresh, warm = load_file(fresh_folder / "model.safetensors"), load_file(warm_folder / "model.safetensors")
    assert fresh.keys() == warm.keys()
    for key in fresh:
        assert fresh[key].dtype == warm[key].dtype and fresh[key].shape == warm[key].shape, key
        # seeded build: identical, up to float noise from a different thread count
        torch.testing.assert_close(fresh[key], warm[key], rtol=1e-3, atol=1e-3, msg=key)
    a, b = AutoTokenizer.from_pretrained(fresh_folder), AutoTokenizer.from_pretrained(warm_folder)
    for text in _sample_texts():
        assert a(text)["input_ids"] == b(text)["input_ids"]


def test_pretraining_never_shows_the_routing_task():
    """The ci base learns what messages are about (a topic tag before each prose reply) and, from
    JSON archive records, JSON's syntax and the label spellings; it never sees a message followed by
    the routing JSON.  Mapping messages to that JSON is what fine-tuning must teach."""
    import json

    from loraweek.data.schema import INTENTS

    chats = tiny_model._pretraining_chats()
    assert len(chats) == len(schema.load_split("train"))
    for conversation in chats:
        assert [m["role"] for m in conversation] == ["user", "assistant"]
        answer = conversation[-1]["content"]
        assert answer.split("] ")[0].lstrip("[") in INTENTS and "{" not in answer
    records = [json.loads(r) for r in tiny_model._archive_records()]
    assert records and all("message" not in r for r in records)
    routing_order = list(schema.load_split("train")[0].target())
    assert all(list(r) != routing_order for r in records)


def test_the_answers_tokens_are_pretrained(tokenizer):
    """LoRA cannot train embeddings: a token the base never saw keeps its random embedding and
    the fine-tuned model can hardly write it.  Before the JSON archive records, 48% of the answer
    tokens were never pretrained and LoRA's loss stalled at 2.5 (issue 7).  Nearly all of them must
    be; the few left (a reply's closing ``."}``) are learnt in fine-tuning."""
    from collections import Counter

    seen = set()
    for texts in tiny_model.pretraining_texts(tokenizer).values():
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            seen.update(ids)
    answer_tokens = Counter(tok for ex in schema.load_split("train") for tok in tokenizer(ex.target_json())["input_ids"])
    unseen = {tok: n for tok, n in answer_tokens.items() if tok not in seen}
    share = 1 - sum(unseen.values()) / sum(answer_tokens.values())
    assert share >= 0.95, (f"only {share:.1%} of the answer tokens occur in pretraining; never seen: "
                           f"{tokenizer.convert_ids_to_tokens(sorted(unseen, key=unseen.get, reverse=True))[:20]}")
