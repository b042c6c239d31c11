"""One answer contract (issue 23, item 2): `loraweek.data.answer` defines what a routing answer is;
the JSON Schema the server decodes with, the training targets and the strict parser agree, and
every scorer of the week (Days 2-3's `metrics.answers`, Day 4's `metrics`, the server) reads it."""
from __future__ import annotations

import json
import random

import jsonschema
import pytest
from sklearn.metrics import f1_score

from loraweek.metrics import answers as evaluation   # the tables of Days 2-3 (once loraweek.evaluation)
from loraweek.data import answer, schema
from loraweek.data.answer import ANSWER_JSON_SCHEMA, INVALID, parse_answer
from loraweek.metrics import classification, report

SPLITS = schema.load_splits()
EXAMPLES = [ex for split in schema.SPLITS for ex in SPLITS[split]]
VALIDATOR = jsonschema.Draft202012Validator(ANSWER_JSON_SCHEMA)


def test_every_target_is_valid_under_the_schema_and_parses_back_to_itself():
    for ex in EXAMPLES:
        text = ex.target_json()
        assert text == answer.answer_json(**ex.target()), ex.id
        assert list(json.loads(text)) == list(answer.ANSWER_KEYS), ex.id
        VALIDATOR.validate(json.loads(text))
        assert parse_answer(text) == ex.target(), ex.id


def _breakages(ex) -> list[str]:
    """Answers that are not routing answers, each for its own reason."""
    good = ex.target()
    return [
        json.dumps({k: v for k, v in good.items() if k != "reply"}),               # a key missing
        json.dumps(dict(good, extra=1)),                                            # a key too many
        json.dumps(dict(good, intent="refnd")),                                     # a label outside the set
        json.dumps(dict(good, priority="URGENT")),
        json.dumps(dict(good, language="fr")),
        json.dumps(dict(good, reply="   ")),                                        # a blank reply
        json.dumps(dict(good, reply=3)),
        json.dumps([good]),                                                         # not an object
    ]


def test_the_schema_and_the_parser_refuse_the_same_answers():
    for ex in SPLITS["validation"][:20]:
        for text in _breakages(ex):
            assert parse_answer(text) is None, text
            assert not VALIDATOR.is_valid(json.loads(text)), text
    for text in ("", "{", "nope", ex.target_json() + " {}"):
        assert parse_answer(text) is None


def test_invalid_is_no_label_and_old_import_paths_are_the_contract():
    assert INVALID not in schema.INTENTS + schema.PRIORITIES + schema.LANGUAGES
    # re-exports kept for notebooks written against the old loraweek.evaluation
    assert evaluation.parse_answer is parse_answer and evaluation.INVALID is INVALID
    assert evaluation.ANSWER_KEYS is answer.ANSWER_KEYS and evaluation.predicted_labels is answer.predicted_labels
    assert classification.INVALID is INVALID and classification.parse_answer is parse_answer
    from loraweek.serving import app, client, structured

    assert structured.ROUTING_SCHEMA is ANSWER_JSON_SCHEMA
    assert app.parse_answer is parse_answer and client.parse_answer is parse_answer


def _noisy_answers(examples, seed: int) -> list[str]:
    """A plausible model: right, wrong label, or broken JSON, at random."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        roll = rng.random()
        if roll < 0.5:
            out.append(ex.target_json())
        elif roll < 0.8:
            out.append(answer.answer_json(rng.choice(schema.INTENTS), rng.choice(schema.PRIORITIES),
                                          rng.choice(schema.LANGUAGES), "ok"))
        else:
            out.append(rng.choice(["", "Xin chào", ex.target_json()[:-3], _breakages(ex)[rng.randrange(8)]]))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_scorer_of_the_week_gives_the_same_numbers(seed):
    examples = SPLITS["test"][:120]
    answers = _noisy_answers(examples, seed)
    day2 = evaluation.score_answers(examples, answers)
    day4 = report.score_system(examples, answers)
    y_true, y_pred = [ex.intent for ex in examples], answer.predicted_labels(answers)
    sklearn_macro = f1_score(y_true, y_pred, labels=list(schema.INTENTS), average="macro", zero_division=0)
    assert day2["intent_macro_f1"] == pytest.approx(sklearn_macro, abs=1e-12)
    assert day4.point("intent_macro_f1") == pytest.approx(sklearn_macro, abs=1e-12)
    for name in ("json_valid", "intent_accuracy", "priority_accuracy", "language_accuracy"):
        assert day2[name] == pytest.approx(day4.point(name), abs=1e-12), name
    fields = classification.field_accuracy(answers, examples)
    assert day2["language_accuracy"] == fields["language_accuracy"]
    assert day2["json_valid"] == sum(parse_answer(a) is not None for a in answers) / len(answers)


def test_scoring_nothing_and_misaligned_lists():
    assert evaluation.score_answers([], []) == dict.fromkeys(evaluation.SCORE_ROWS, 0.0)
    with pytest.raises(ValueError, match="expected one per example"):
        evaluation.score_answers(SPLITS["test"][:2], ["{}"])
    with pytest.raises(ValueError, match="field must be one of"):
        answer.predicted_labels(["{}"], field="reply")
