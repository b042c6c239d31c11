"""The committed helpdesk dataset: reproducible, valid, held-out test phrasings, PII behaviour."""
import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import schema  # noqa: E402
from loraweek.data.pii import find_pii, scrub_pii  # noqa: E402

GENERATE = ROOT / "shared" / "loraweek" / "data" / "helpdesk" / "generate.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("helpdesk_generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def splits():
    return schema.load_splits()  # also: every record of every split passes validation


def test_generator_reproduces_committed_files(tmp_path):
    # in-process into tmp_path ...
    load_generator().write_splits(tmp_path)
    for split in schema.SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (schema.DATA_DIR / f"{split}.jsonl").read_bytes(), split
    # ... and via the CLI from another directory, with a different hash seed
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    result = subprocess.run([sys.executable, str(GENERATE), "--check"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generator_labels_match_schema():
    gen = load_generator()
    assert gen.INTENTS == schema.INTENTS and gen.PRIORITIES == schema.PRIORITIES
    assert gen.SPLITS == schema.SPLITS


def test_counts(splits):
    assert len(splits["train"]) >= 3000
    assert len(splits["validation"]) >= 300 and len(splits["test"]) >= 300


def test_intents_imbalanced(splits):
    counts = Counter(ex.intent for ex in splits["train"])
    assert len(counts) >= 8
    assert max(counts.values()) / min(counts.values()) >= 10
    assert counts.most_common(1)[0][0] == "order_status"


def test_both_languages_everywhere(splits):
    for split, examples in splits.items():
        langs = Counter(ex.language for ex in examples)
        assert set(langs) == {"vi", "en"}, split
        assert 0.5 <= langs["vi"] / len(examples) <= 0.7, split


def test_ids_follow_split(splits):
    for split, examples in splits.items():
        assert [ex.id for ex in examples] == [f"{split}-{i:05d}" for i in range(1, len(examples) + 1)]


def test_test_phrasings_held_out(splits):
    train_side = splits["train"] + splits["validation"]
    seen_templates = {ex.template_id for ex in train_side}
    leaked = {ex.template_id for ex in splits["test"]} & seen_templates
    assert not leaked, sorted(leaked)
    train_messages = {ex.message for ex in splits["train"]}
    assert not [ex.id for ex in splits["test"] if ex.message in train_messages]
    all_messages = [ex.message for examples in splits.values() for ex in examples]
    assert len(set(all_messages)) == len(all_messages)


def test_priority_follows_documented_rule(splits):
    gen = load_generator()
    for examples in splits.values():
        for ex in examples:
            assert ex.priority == gen.priority_for(ex.intent, ex.message), ex.id


def test_most_messages_carry_pii(splits):
    for split, examples in splits.items():
        share = sum(bool(find_pii(ex.message)) for ex in examples) / len(examples)
        assert 0.6 <= share < 1.0, (split, share)


def test_replies_are_clean_and_short(splits):
    for examples in splits.values():
        for ex in examples:
            assert find_pii(ex.reply) == [], ex.id
            assert len(ex.reply) <= 200, ex.id
            # a reply may name an order code, but only the one the customer gave
            assert all(code in ex.message for code in re.findall(r"DH\d+", ex.reply)), ex.id


def test_scrub_removes_all_pii(splits):
    for examples in splits.values():
        for ex in examples:
            clean = scrub_pii(ex.message)
            assert find_pii(clean) == [], ex.id
            assert "@" not in clean, ex.id
