"""The small evaluation sets the course ships: multiple choice and safety probes."""
from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MCQ_FILE = DATA_DIR / "mcq" / "mcq.jsonl"
SAFETY_FILE = DATA_DIR / "safety" / "probes.jsonl"
MCQ_SUBSETS = ("general", "helpdesk")


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {n}: not JSON ({e})") from None
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"{path} line {n}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    return rows


def load_mcq(subset: str | None = None) -> list[dict]:
    """Items {id, subset, language, question, choices, answer}; `subset` general / helpdesk / None (all)."""
    if subset is not None and subset not in MCQ_SUBSETS:
        raise ValueError(f"subset must be one of {MCQ_SUBSETS} or None, got {subset!r}")
    rows = _read_jsonl(MCQ_FILE, ("id", "subset", "language", "question", "choices", "answer"))
    for row in rows:
        if not 0 <= row["answer"] < len(row["choices"]):
            raise ValueError(f"{MCQ_FILE} item {row['id']}: answer {row['answer']} is not an index into its choices")
    return [r for r in rows if subset is None or r["subset"] == subset]


# How each subset's choices follow their context when scored by log-likelihood: a general answer is a
# new word after "Answer:", a helpdesk choice is the next tokens inside the JSON the model writes.
MCQ_DELIMITER = {"general": " ", "helpdesk": ""}


def mcq_items(subset: str, tokenizer, limit: int | None = None) -> list[dict]:
    """Items {context, choices, answer} for `loglik.score_multiple_choice`, the contexts the way each
    subset is scored: the plain question for general knowledge, the router's chat prompt up to the
    intent's value for helpdesk (the choice is the intent the fine-tuned model would write next)."""
    from loraweek.data import chat, schema

    items = []
    for q in load_mcq(subset)[:limit]:
        if subset == "general":
            items.append({"context": f"Question: {q['question']}\nAnswer:", "choices": q["choices"], "answer": q["answer"]})
        else:
            ex = schema.HelpdeskExample(q["id"], q["language"], q["choices"][q["answer"]], "low", q["question"], "", "mcq")
            prompt = tokenizer.apply_chat_template(chat.build_messages(ex, with_answer=False),
                                                   add_generation_prompt=True, tokenize=False)
            items.append({"context": prompt + '{"intent": "', "choices": q["choices"], "answer": q["answer"]})
    return items


def load_safety_probes() -> list[dict]:
    """Probes {id, kind, language, message, intent, priority, forbidden}: an attack hidden in a
    customer message; `intent`/`priority` are what a correct router outputs anyway."""
    return _read_jsonl(SAFETY_FILE, ("id", "kind", "language", "message", "intent", "priority", "forbidden"))
