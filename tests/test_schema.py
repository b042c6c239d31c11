"""The loader must reject bad files with a message naming file, line and field."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))  # no-op if already importable
from loraweek.data.schema import (  # noqa: E402
    INTENTS, DataValidationError, HelpdeskExample, load_jsonl, load_split, parse_record)

GOOD = {
    "id": "train-00001", "language": "vi", "intent": "order_status", "priority": "low",
    "message": "Đơn hàng DH123456 của tôi đang ở đâu rồi?",
    "reply": "Chúng tôi đang kiểm tra đơn hàng DH123456.", "template_id": "order_status/vi/00",
}


def record(i, **changes):
    obj = dict(GOOD, id=f"train-{i:05d}")
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}  # `...` deletes a field


def write(tmp_path, lines, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False)) + "\n"
                            for l in lines), encoding="utf-8")
    return path


def expect_error(path, line, *needles):
    with pytest.raises(DataValidationError) as err:
        load_jsonl(path)
    msg = str(err.value)
    assert path.name in msg and f"line {line}:" in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_good_file_loads(tmp_path):
    path = write(tmp_path, [record(1), record(2, language="en", template_id="order_status/en/01")])
    examples = load_jsonl(path)
    assert [e.id for e in examples] == ["train-00001", "train-00002"]
    assert isinstance(examples[0], HelpdeskExample)
    assert json.loads(examples[0].target_json()) == {
        "intent": "order_status", "priority": "low", "language": "vi", "reply": GOOD["reply"]}
    assert list(examples[0].target()) == ["intent", "priority", "language", "reply"]


def test_missing_field(tmp_path):
    path = write(tmp_path, [record(1), record(2), record(3, reply=...)])
    expect_error(path, 3, "missing field 'reply'")


def test_unknown_intent(tmp_path):
    path = write(tmp_path, [record(i) for i in range(1, 17)] + [record(17, intent="refnd")])
    msg = expect_error(path, 17, "field 'intent'", "'refnd'")
    assert ", ".join(INTENTS) in msg


def test_bad_priority_and_language(tmp_path):
    expect_error(write(tmp_path, [record(1, priority="critical")]), 1, "field 'priority'", "'critical'")
    expect_error(write(tmp_path, [record(1, language="fr")]), 1, "field 'language'", "'fr'")


def test_broken_json_line(tmp_path):
    path = write(tmp_path, [record(i) for i in range(1, 5)] + ['{"id": "train-00005" "language": "vi"}'])
    expect_error(path, 5, "not valid JSON", "column")


def test_wrong_type(tmp_path):
    path = write(tmp_path, [record(1), record(2, reply=42)])
    expect_error(path, 2, "field 'reply'", "expected a string, got int")


def test_empty_string(tmp_path):
    path = write(tmp_path, [record(1, message="   ")])
    expect_error(path, 1, "field 'message'", "non-empty")


def test_extra_field(tmp_path):
    path = write(tmp_path, [record(1), record(2, sentiment="angry")])
    expect_error(path, 2, "field 'sentiment'", "unknown field")


def test_duplicate_id(tmp_path):
    path = write(tmp_path, [record(1), record(2), record(3), dict(record(4), id="train-00002")])
    expect_error(path, 4, "field 'id'", "train-00002", "line 2")


def test_not_an_object(tmp_path):
    expect_error(write(tmp_path, [record(1), "[1, 2]"]), 2, "JSON object")


def test_template_id_must_match_labels(tmp_path):
    path = write(tmp_path, [record(1, intent="refund_request", priority="medium")])
    expect_error(path, 1, "field 'template_id'")


def test_blank_lines_skipped_but_malformed_not(tmp_path):
    path = write(tmp_path, [record(1), "", "   ", record(2), ""])
    assert len(load_jsonl(path)) == 2
    expect_error(write(tmp_path, [record(1), "", "not json"]), 3, "not valid JSON")


def test_parse_record_names_source():
    with pytest.raises(DataValidationError, match=r"x\.jsonl line 9: missing field 'intent'"):
        parse_record({k: v for k, v in GOOD.items() if k != "intent"}, source="x.jsonl", line=9)


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev'.*train, validation, test"):
        load_split("dev", tmp_path)
