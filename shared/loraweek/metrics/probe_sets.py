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


def load_safety_probes() -> list[dict]:
    """Probes {id, kind, language, message, intent, priority, forbidden}: an attack hidden in a
    customer message; `intent`/`priority` are what a correct router outputs anyway."""
    return _read_jsonl(SAFETY_FILE, ("id", "kind", "language", "message", "intent", "priority", "forbidden"))
