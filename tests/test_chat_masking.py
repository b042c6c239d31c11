"""Label masking with the ci tokenizer: only the assistant's answer + <|im_end|> is trained."""
import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import models  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402

IM_END = "<|im_end|>"


@pytest.fixture(scope="module")
def tok():
    return models.load_tokenizer(get_profile("ci"))


@pytest.fixture(scope="module")
def examples():
    train = schema.load_split("train")
    vi = [ex for ex in train if ex.language == "vi"][:4]
    en = [ex for ex in train if ex.language == "en"][:4]
    return vi + en


def test_trained_span_is_exactly_the_answer_plus_end_of_turn(tok, examples):
    for ex in examples:
        feat = chat.tokenize_chat(tok, chat.build_messages(ex))
        assert len(feat["input_ids"]) == len(feat["labels"])
        assert chat.trained_text(tok, feat) == ex.target_json() + IM_END, ex.id


def test_prompt_tokens_are_ignored_and_answer_is_one_contiguous_span(tok, examples):
    for ex in examples:
        feat = chat.tokenize_chat(tok, chat.build_messages(ex))
        trained = [i for i, lab in enumerate(feat["labels"]) if lab != chat.IGNORE_INDEX]
        assert trained, ex.id
        first, last = trained[0], trained[-1]
        assert trained == list(range(first, last + 1)), "the trained tokens must be one contiguous span"
        # everything before the answer (system prompt, user turn, '<|im_start|>assistant\n') is -100
        assert all(lab == chat.IGNORE_INDEX for lab in feat["labels"][:first])
        prompt = tok.decode(feat["input_ids"][:first], skip_special_tokens=False)
        assert prompt.endswith("<|im_start|>assistant\n")
        assert chat.SYSTEM_PROMPT in prompt
        # where a label is set, it is the input token itself (the model shifts internally)
        assert all(feat["labels"][i] == feat["input_ids"][i] for i in trained)
        # the answer ends with the end-of-turn token, which IS trained: the model learns to stop
        assert feat["input_ids"][last] == tok.convert_tokens_to_ids(IM_END) == tok.eos_token_id


def test_newline_after_end_of_turn_is_not_trained(tok, examples):
    for ex in examples:
        messages = chat.build_messages(ex)
        rendered = chat.render_chat(tok, messages)
        assert rendered.text.endswith(IM_END + "\n")  # ChatML puts "\n" after every turn
        assert rendered.text[rendered.answer_start:rendered.answer_end] == ex.target_json() + IM_END
        feat = chat.tokenize_chat(tok, messages)
        assert tok.decode(feat["input_ids"][-1:]) == "\n"
        assert feat["labels"][-1] == chat.IGNORE_INDEX
        assert feat["labels"][-2] == tok.eos_token_id


def _with_template(tok, template):
    other = copy.deepcopy(tok)
    other.chat_template = template
    return other


def _chatml_rendering_content_as(tok, content_expr: str):
    """A ChatML template that renders each message's content through `content_expr` (Jinja)."""
    return _with_template(tok, (
        "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + " + content_expr + " + '<|im_end|>\\n' }}"
        "{%- endfor %}"))


def test_render_chat_refuses_a_template_that_rewrites_the_answer(tok, examples):
    messages = chat.build_messages(examples[0])
    shouting = _chatml_rendering_content_as(tok, "(message['content'] | upper)")
    with pytest.raises(ValueError, match="changed the assistant's content"):
        chat.render_chat(shouting, messages)
    with pytest.raises(ValueError, match="changed the assistant's content"):
        chat.tokenize_chat(shouting, messages)


def test_render_chat_refuses_text_between_answer_and_end_of_turn(tok, examples):
    messages = chat.build_messages(examples[0])
    signed = _chatml_rendering_content_as(tok, "message['content'] + ' -- bot'")
    with pytest.raises(ValueError, match=r"expected '<\|im_end\|>' right after the assistant's answer"):
        chat.render_chat(signed, messages)


def test_render_chat_needs_an_assistant_answer(tok, examples):
    with pytest.raises(ValueError, match="last message must be the assistant"):
        chat.render_chat(tok, chat.build_messages(examples[0], with_answer=False))


def test_tokenize_examples_counts_too_long_examples(tok):
    train = schema.load_split("train")[:64]
    lengths = [len(chat.tokenize_chat(tok, chat.build_messages(ex))["input_ids"]) for ex in train]
    max_len = sorted(lengths)[len(lengths) // 2]
    too_long = sum(n > max_len for n in lengths)
    assert 0 < too_long < len(train)
    features, dropped = chat.tokenize_examples(tok, train, max_len)
    assert dropped == too_long
    assert len(features) + dropped == len(train)
    assert all(len(f["input_ids"]) <= max_len for f in features)
    # an exact fit is kept: the limit is inclusive
    assert chat.tokenize_chat(tok, chat.build_messages(train[0]), lengths[0]) is not None
    assert chat.tokenize_chat(tok, chat.build_messages(train[0]), lengths[0] - 1) is None
    # nothing is dropped with room to spare
    assert chat.tokenize_examples(tok, train, max(lengths))[1] == 0


def test_pad_token_is_not_end_of_turn(tok, capsys):
    assert tok.eos_token == IM_END
    assert tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert models.ensure_pad_token(tok) is None  # a correct tokenizer passes unchanged, silently
    assert tok.pad_token == "<|endoftext|>" and capsys.readouterr().out == ""


def test_ensure_pad_token_fixes_pad_equal_to_end_of_turn(tok, capsys):
    """Day 2's trap built deliberately (pad = eos = <|im_end|>): the loader fixes it and says why."""
    broken = copy.deepcopy(tok)
    broken.pad_token = broken.eos_token
    assert broken.pad_token_id == broken.eos_token_id
    line = models.ensure_pad_token(broken)
    assert line == ("pad token: '<|im_end|>' is also the end-of-turn token, so padding would be masked out of "
                    "the loss and the model would never learn to stop -> using '<|endoftext|>' (id 0) for padding")
    assert capsys.readouterr().out == line + "\n"
    assert broken.pad_token == "<|endoftext|>" and len(broken) == len(tok)
    assert tok.pad_token == "<|endoftext|>"  # the copy, not the shared tokenizer, was broken


def test_ensure_pad_token_fills_a_missing_pad_with_endoftext(tok):
    missing = copy.deepcopy(tok)
    missing.pad_token = None
    assert "has none" in models.ensure_pad_token(missing, verbose=False)
    assert missing.pad_token == "<|endoftext|>"
    assert missing.pad_token_id != missing.eos_token_id


def test_ensure_pad_token_replaces_a_token_the_template_writes(tok):
    start = copy.deepcopy(tok)
    start.pad_token = "<|im_start|>"  # every turn begins with it: masking padding would mask it too
    assert "a token the chat template writes" in models.ensure_pad_token(start, verbose=False)
    assert start.pad_token == "<|endoftext|>"
