"""Loading and validation for the helpdesk dataset.

Every problem is a DataValidationError that names the file, the line and the
field, e.g.

    .../train.jsonl line 17: field 'intent': expected one of order_status, ... but got 'refnd'

Nothing is silently skipped: only fully blank lines are ignored.
"""
import json
from dataclasses import dataclass, fields
from pathlib import Path

INTENTS = ("order_status", "payment_failed", "refund_request", "delivery_complaint",
           "product_question", "cancel_order", "account_locked", "change_address",
           "loan_inquiry", "fraud_report")
PRIORITIES = ("low", "medium", "high", "urgent")
LANGUAGES = ("vi", "en")
SPLITS = ("train", "validation", "test")
DATA_DIR = Path(__file__).resolve().parent / "helpdesk"

# the closed label sets, checked per field
CHOICES = {"intent": INTENTS, "priority": PRIORITIES, "language": LANGUAGES}


class DataValidationError(ValueError):
    pass


@dataclass(frozen=True)
class HelpdeskExample:
    id: str
    language: str
    intent: str
    priority: str
    message: str
    reply: str
    template_id: str

    def target(self) -> dict:
        """What the model must output, in a fixed key order."""
        return {"intent": self.intent, "priority": self.priority,
                "language": self.language, "reply": self.reply}

    def target_json(self) -> str:
        return answer_json(**self.target())


def answer_json(intent: str, priority: str, language: str, reply: str) -> str:
    """The target text the model learns to write (json.dumps's ", " / ": ", non-ASCII kept); part
    of the answer contract, `loraweek.data.answer`, which re-exports it (this module sits below it)."""
    return json.dumps({"intent": intent, "priority": priority, "language": language, "reply": reply},
                      ensure_ascii=False)


FIELDS = tuple(f.name for f in fields(HelpdeskExample))


def parse_record(obj: dict, *, source: str, line: int) -> HelpdeskExample:
    """Validate one decoded JSON line and turn it into a HelpdeskExample."""
    def fail(msg):
        raise DataValidationError(f"{source} line {line}: {msg}")

    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {_type_name(obj)}")
    for name in FIELDS:
        if name not in obj:
            fail(f"missing field {name!r}")
    for name in obj:  # dicts keep file order, so the first offender reported is stable
        if name not in FIELDS:
            fail(f"field {name!r}: unknown field (expected only {', '.join(FIELDS)})")
    for name in FIELDS:
        value = obj[name]
        if not isinstance(value, str):
            fail(f"field {name!r}: expected a string, got {_type_name(value)}")
        if not value.strip():
            fail(f"field {name!r}: expected a non-empty string")
        if name in CHOICES and value not in CHOICES[name]:
            fail(f"field {name!r}: expected one of {', '.join(CHOICES[name])} but got {value!r}")
    # template ids are "intent/lang/NN"; a mismatch means the labels were edited by hand
    prefix = f"{obj['intent']}/{obj['language']}/"
    if not obj["template_id"].startswith(prefix):
        fail(f"field 'template_id': expected it to start with {prefix!r} but got {obj['template_id']!r}")
    return HelpdeskExample(**{name: obj[name] for name in FIELDS})


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def load_jsonl(path) -> list[HelpdeskExample]:
    """Every record of one JSONL file, validated; ids must be unique within the file."""
    source = str(path)
    examples, first_line = [], {}
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue  # a fully blank line carries nothing; anything else must parse
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataValidationError(
                    f"{source} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
            ex = parse_record(obj, source=source, line=n)
            if ex.id in first_line:
                raise DataValidationError(
                    f"{source} line {n}: field 'id': duplicate id {ex.id!r} (first seen on line {first_line[ex.id]})")
            first_line[ex.id] = n
            examples.append(ex)
    return examples


def load_split(split: str, data_dir=None) -> list[HelpdeskExample]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    path = Path(data_dir or DATA_DIR) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run shared/loraweek/data/helpdesk/generate.py to create it")
    return load_jsonl(path)


def load_splits(data_dir=None) -> dict[str, list[HelpdeskExample]]:
    return {split: load_split(split, data_dir) for split in SPLITS}
