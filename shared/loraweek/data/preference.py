"""Preference pairs for DPO, built from the helpdesk data (seeded, no hand-written pairs).

Each pair is one scrubbed customer message (the prompt), the *chosen* answer (the correct routing
JSON with its polite reply: `HelpdeskExample.target_json()`) and a *rejected* answer showing one
realistic failure of a router:

- ``wrong_intent``: valid JSON, another intent (a routing error);
- ``wrong_language``: the language flipped and a reply in the other language;
- ``pii_leak``: the polite reply plus a raw PII value that the scrubber hid from the prompt
  (what a model that memorised training messages would regurgitate);
- ``rude``: the right labels with a rude reply in the customer's language;
- ``invalid_json``: the right answer, broken as JSON (cut off, or Python-style quotes).

Kinds are assigned round-robin over a seeded shuffle, so their counts are balanced and printed
by `kind_counts`; a ``pii_leak`` needs PII in the message, so a message without any takes the
next kind.  `split_pairs` splits by *source message*: no message appears in both splits.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass

from loraweek.data.pii import find_pii
from loraweek.data.schema import INTENTS, HelpdeskExample

KINDS = ("wrong_intent", "wrong_language", "pii_leak", "rude", "invalid_json")
SEED = 0
RUDE_REPLIES = {
    "en": ("Read the FAQ before wasting our time.", "Not our problem. Stop writing to us.",
           "We have more important customers than you."),
    "vi": ("Đọc hướng dẫn trước khi hỏi đi.", "Không phải việc của chúng tôi. Đừng nhắn nữa.",
           "Chúng tôi không rảnh trả lời mấy câu này."),
}
LEAK_SENTENCE = {"en": " We have noted your details: {value}.", "vi": " Chúng tôi đã ghi nhận thông tin: {value}."}


@dataclass(frozen=True)
class PreferencePair:
    source_id: str      # the helpdesk example the pair was built from
    message: str        # the raw customer message (scrubbed when rendered as a prompt)
    chosen: str
    rejected: str
    kind: str

    def __post_init__(self):
        validate_pair(self.chosen, self.rejected, self.message)


def validate_pair(chosen: str, rejected: str, message: str = "x") -> None:
    """A pair DPO can learn from: non-empty prompt and answers, and two *different* answers."""
    for name, value in (("message", message), ("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"preference pair field {name!r}: expected a non-empty string, got {value!r}")
    if chosen.strip() == rejected.strip():
        raise ValueError("preference pair field 'rejected': identical to 'chosen' (a pair with no preference "
                         "teaches nothing and makes the DPO loss constant at log 2)")


def _answer(ex: HelpdeskExample, **changes) -> str:
    return json.dumps({**ex.target(), **changes}, ensure_ascii=False)


def _rejected(kind: str, ex: HelpdeskExample, rng: random.Random, replies: dict) -> str | None:
    """The rejected answer of `kind` for `ex`, or None when `ex` cannot show that failure."""
    if kind == "wrong_intent":
        return _answer(ex, intent=rng.choice([i for i in INTENTS if i != ex.intent]))
    if kind == "wrong_language":
        other = "en" if ex.language == "vi" else "vi"
        return _answer(ex, language=other, reply=rng.choice(replies[(ex.intent, other)]))
    if kind == "pii_leak":
        found = find_pii(ex.message)
        if not found:
            return None
        return _answer(ex, reply=ex.reply + LEAK_SENTENCE[ex.language].format(value=rng.choice(found)[1]))
    if kind == "rude":
        return _answer(ex, reply=rng.choice(RUDE_REPLIES[ex.language]))
    if kind == "invalid_json":
        good = ex.target_json()
        return good[: rng.randint(len(good) // 3, len(good) - 2)] if rng.random() < 0.5 else str(ex.target())
    raise ValueError(f"kinds: unknown rejection kind {kind!r}; expected one of {', '.join(KINDS)}")


def build_pairs(examples: list[HelpdeskExample], kinds=KINDS, seed: int = SEED) -> list[PreferencePair]:
    """One pair per example: chosen = its routing JSON, rejected = a failure of the next kind in turn."""
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("kinds: expected at least one rejection kind")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kinds: unknown rejection kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not examples:
        raise ValueError("examples: expected at least one helpdesk example")
    rng = random.Random(seed)
    replies: dict = {}
    for ex in examples:  # the replies each (intent, language) really uses, for wrong_language
        replies.setdefault((ex.intent, ex.language), [])
        if ex.reply not in replies[(ex.intent, ex.language)]:
            replies[(ex.intent, ex.language)].append(ex.reply)
    order = list(examples)
    rng.shuffle(order)
    pairs = []
    for n, ex in enumerate(order):
        for k in range(len(kinds)):  # this example's kind, or the next one it can show
            kind = kinds[(n + k) % len(kinds)]
            if kind == "wrong_language" and not replies.get((ex.intent, "en" if ex.language == "vi" else "vi")):
                continue
            rejected = _rejected(kind, ex, rng, replies)
            if rejected is not None:
                pairs.append(PreferencePair(ex.id, ex.message, ex.target_json(), rejected, kind))
                break
    return pairs


def kind_counts(pairs: list[PreferencePair]) -> dict[str, int]:
    counts = Counter(p.kind for p in pairs)
    return {k: counts.get(k, 0) for k in KINDS}


def split_pairs(pairs: list[PreferencePair], validation_fraction: float = 0.2, seed: int = SEED):
    """(train, validation), split by source message so that none is in both."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction: expected a number between 0 and 1, got {validation_fraction!r}")
    sources = sorted({p.source_id for p in pairs})
    random.Random(seed).shuffle(sources)
    n_val = max(1, round(len(sources) * validation_fraction))
    if n_val >= len(sources):
        raise ValueError(f"pairs: {len(sources)} source message(s) cannot be split into two non-empty parts")
    val_ids = set(sources[:n_val])
    return [p for p in pairs if p.source_id not in val_ids], [p for p in pairs if p.source_id in val_ids]


def to_dataset(pairs: list[PreferencePair]):
    """TRL's conversational preference format: prompt (system + scrubbed user turn), chosen, rejected."""
    from datasets import Dataset

    from loraweek.data import chat

    rows = {"prompt": [], "chosen": [], "rejected": [], "kind": []}
    for p in pairs:
        rows["prompt"].append([{"role": "system", "content": chat.SYSTEM_PROMPT},
                               {"role": "user", "content": chat.scrub_message(p.message)}])
        rows["chosen"].append([{"role": "assistant", "content": p.chosen}])
        rows["rejected"].append([{"role": "assistant", "content": p.rejected}])
        rows["kind"].append(p.kind)
    return Dataset.from_dict(rows)
