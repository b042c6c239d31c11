"""Chat formatting and label masking.

A training example is a conversation: system prompt, the (scrubbed) customer
message, and the assistant's JSON answer.  We render it with the tokenizer's *own*
chat template (never a hand-written one: a mismatch between training and inference
formats is a classic silent failure), then train only on the assistant's answer
plus the end-of-turn token.  Everything else gets the label -100, which
PyTorch's cross-entropy ignores.

Why character offsets and not "everything after the prompt"?  Some templates
rewrite the assistant turn: Qwen3's inserts an empty ``<think>...</think>`` block
before the answer.  Training on that block teaches the model to emit it.  Finding
the answer's characters in the rendered text and mapping them to tokens through
the tokenizer's offset mapping works for any template that keeps the content
verbatim, and fails loudly when one does not.

Which token ends a turn depends on the model family (ChatML's ``<|im_end|>`` for Qwen and
SmolLM2, ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma): `find_end_of_turn` reads it
from the template itself, by rendering a probe answer and taking the special token that follows.
"""
from __future__ import annotations

from dataclasses import dataclass

from loraweek.data.pii import scrub_pii
from loraweek.data.schema import INTENTS, HelpdeskExample

IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss(ignore_index=-100) skips these positions
END_OF_TURN = "<|im_end|>"  # ChatML's (Qwen, SmolLM2, the ci model); other families: find_end_of_turn()
_PROBE = "LoRAweekProbeAnswer"
_END_OF_TURN_CACHE: dict = {}

SYSTEM_PROMPT = (
    "You are the helpdesk router of a Vietnamese e-commerce and fintech company. "
    "Answer with one JSON object with the keys intent, priority, language, reply. "
    f"intent is one of: {', '.join(INTENTS)}. priority is low, medium, high or urgent. "
    "language is vi or en. reply is a short, polite answer in the customer's language."
)


def scrub_message(text: str) -> str:
    """PII never reaches the model: it could be memorised and later regurgitated."""
    return scrub_pii(text)


def build_messages(example: HelpdeskExample, with_answer: bool = True) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": scrub_message(example.message)}]
    if with_answer:
        messages.append({"role": "assistant", "content": example.target_json()})
    return messages


@dataclass
class RenderedChat:
    text: str
    answer_start: int  # character span of the assistant's answer + end-of-turn token
    answer_end: int


def special_tokens(tokenizer) -> set[str]:
    """The named special tokens (eos, pad, ...) and every added token marked special."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {t for t in tokenizer.all_special_tokens if t} | {t.content for t in added.values() if t.special}


def find_end_of_turn(tokenizer) -> str:
    """The special token the tokenizer's chat template puts right after an assistant's answer.

    Found by rendering a probe exchange, so it works for any family whose template ends a turn
    with one special token; anything else raises a ValueError saying what the template rendered."""
    key = (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), tokenizer.chat_template)
    if key in _END_OF_TURN_CACHE:
        return _END_OF_TURN_CACHE[key]
    if not tokenizer.chat_template:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no chat template: cannot tell where an "
                         "assistant turn ends (use an instruct/chat model's tokenizer)")
    probe = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": _PROBE}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception as err:  # jinja raises its own exception types for unsupported conversations
        raise ValueError(f"the chat template of {tokenizer.name_or_path!r} cannot render a user/assistant "
                         f"exchange: {err}") from err
    at = text.rfind(_PROBE)
    if at < 0:
        raise ValueError(f"the chat template of {tokenizer.name_or_path!r} changed the assistant's content; "
                         "cannot locate it to mask labels")
    after = text[at + len(_PROBE):]
    found = [(after.find(s), -len(s), s) for s in special_tokens(tokenizer) if s in after]
    if not found:
        raise ValueError(f"the chat template of {tokenizer.name_or_path!r} puts no special end-of-turn token "
                         f"after the assistant's answer (it renders {after[:40]!r} there): the model could never "
                         "learn to stop; pass end_of_turn=... explicitly or use a template that ends turns "
                         "with a special token")
    pos, _, token = min(found)  # the first special token; the longest one if several start there
    if pos > 0:
        raise ValueError(f"expected {token!r} right after the assistant's answer, found {after[:pos + len(token)]!r}: "
                         "the template adds text between the answer and the end of the turn")
    _END_OF_TURN_CACHE[key] = token
    return token


def template_special_tokens(tokenizer) -> set[str]:
    """The special tokens the chat template writes around a system/user/assistant exchange and a
    generation prompt (a pad token must be none of them: masking padding would mask them too)."""
    turns = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": _PROBE}]
    texts = []
    for conv in ([{"role": "system", "content": "Be brief."}] + turns, turns):
        try:  # some templates refuse a system turn
            texts += [tokenizer.apply_chat_template(conv, tokenize=False),
                      tokenizer.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True)]
        except Exception:  # jinja raises its own exception types (raise_exception in templates)
            continue
    return {t for t in special_tokens(tokenizer) if any(t in text for text in texts)}


def end_of_turn_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids(find_end_of_turn(tokenizer))


def render_chat(tokenizer, messages: list[dict], end_of_turn: str | None = None) -> RenderedChat:
    """Render with the tokenizer's chat template and locate the trained span: the answer and the
    end-of-turn token (read from the template when not given)."""
    if end_of_turn is None:
        end_of_turn = find_end_of_turn(tokenizer)
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's answer to train on")
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    answer = messages[-1]["content"]
    start = text.rfind(answer)
    if start < 0:
        raise ValueError("the chat template changed the assistant's content; cannot locate it to mask labels")
    end = start + len(answer)
    if not text.startswith(end_of_turn, end):
        raise ValueError(f"expected {end_of_turn!r} right after the assistant's answer, found {text[end:end + 20]!r}")
    return RenderedChat(text, start, end + len(end_of_turn))


def mask_labels(input_ids: list[int], offsets: list[tuple[int, int]], answer_start: int,
                answer_end: int) -> list[int]:
    """Labels = input_ids where the token lies inside [answer_start, answer_end), else -100."""
    return [tok if start >= answer_start and end <= answer_end and end > start else IGNORE_INDEX
            for tok, (start, end) in zip(input_ids, offsets)]


def tokenize_chat(tokenizer, messages: list[dict], max_len: int | None = None) -> dict | None:
    """input_ids + labels for one conversation; None if it is longer than max_len."""
    rendered = render_chat(tokenizer, messages)
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    if max_len is not None and len(enc["input_ids"]) > max_len:
        return None
    labels = mask_labels(enc["input_ids"], enc["offset_mapping"], rendered.answer_start, rendered.answer_end)
    return {"input_ids": enc["input_ids"], "labels": labels}


def tokenize_examples(tokenizer, examples: list[HelpdeskExample], max_len: int) -> tuple[list[dict], int]:
    """Tokenize a split; return (features, how many were too long and left out)."""
    features, too_long = [], 0
    for ex in examples:
        feat = tokenize_chat(tokenizer, build_messages(ex), max_len)
        if feat is None:
            too_long += 1
        else:
            features.append(feat)
    return features, too_long


def trained_text(tokenizer, feature: dict) -> str:
    """Decode only the trained tokens: what the loss actually teaches."""
    ids = [tok for tok in feature["labels"] if tok != IGNORE_INDEX]
    return tokenizer.decode(ids, skip_special_tokens=False)
