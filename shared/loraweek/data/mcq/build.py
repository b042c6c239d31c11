"""Rebuild mcq.jsonl: `python -m loraweek.data.mcq.build` (seeded; `--check` verifies it byte for byte).

general  : the hand-written items of general.py (world knowledge, English and Vietnamese);
helpdesk : held-out *test* messages with four intents to choose from (the right one and three
           seeded distractors), so the course's fine-tuned model can be compared with its base.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from loraweek.data.mcq.general import GENERAL
from loraweek.data.schema import INTENTS, load_split

OUT = Path(__file__).resolve().parent / "mcq.jsonl"
SEED = 6
PER_INTENT = 3


def build() -> str:
    rows = [{"id": f"general-{i:02d}", "subset": "general", "language": lang, "question": q,
             "choices": choices, "answer": answer}
            for i, (lang, q, choices, answer) in enumerate(GENERAL, 1)]
    rng = random.Random(SEED)
    test = load_split("test")
    for intent in INTENTS:
        for ex in rng.sample([e for e in test if e.intent == intent], PER_INTENT):
            choices = [intent] + rng.sample([i for i in INTENTS if i != intent], 3)
            rng.shuffle(choices)
            rows.append({"id": f"helpdesk-{ex.id}", "subset": "helpdesk", "language": ex.language,
                         "question": ex.message, "choices": choices, "answer": choices.index(intent)})
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


if __name__ == "__main__":
    text = build()
    if "--check" in sys.argv[1:]:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == text else "mcq.jsonl is not what build.py produces")
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.name}: {text.count(chr(10))} items")
