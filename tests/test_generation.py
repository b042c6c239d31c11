"""generate_answers' early stop for prose (NotJsonStop) changes no score: an answer it cuts is the
beginning of the answer generation would have given without it, and neither could be valid JSON."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import schema  # noqa: E402
from loraweek.data.answer import parse_answer  # noqa: E402
from loraweek.models.finetuned import load_base_model  # noqa: E402
from loraweek.generation import PROSE_PREVIEW_TOKENS, generate_answers  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402


def test_prose_is_cut_without_changing_any_score(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    profile = get_profile("ci")
    base, tokenizer = load_base_model(profile)  # the untrained base answers in prose, never JSON
    examples = schema.load_split("test")[:4]
    new_tokens = PROSE_PREVIEW_TOKENS + 8
    full = generate_answers(base, tokenizer, examples, new_tokens, batch_size=4, stop_prose=False)
    cut = generate_answers(base, tokenizer, examples, new_tokens, batch_size=4)
    assert [parse_answer(a) for a in cut] == [parse_answer(a) for a in full]
    assert all(f.startswith(c) for c, f in zip(cut, full)), "a cut answer is the beginning of the full one"
    prose = [i for i, f in enumerate(full) if not f.startswith("{")]
    assert prose, "sanity: the ci base should answer some messages in prose"
    lengths = {i: len(tokenizer(cut[i], add_special_tokens=False)["input_ids"]) for i in prose}
    assert any(len(cut[i]) < len(full[i]) for i in prose), "prose answers should be cut short"
    assert all(n <= PROSE_PREVIEW_TOKENS + 2 for n in lengths.values()), lengths
