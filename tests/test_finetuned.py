"""One fine-tuned adapter for Days 3-5 (loraweek.models.finetuned): trained once per recipe, cached
read-only, Day 2's own adapter preferred when it matches.  A 2-step recipe keeps this fast."""
import os
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.models import finetuned  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return get_profile("ci").replace(max_steps=2, train_examples=32, eval_examples=8, eval_every=2, save_every=2)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """A private adapter cache for this module (the ci base model stays the shared, cached one)."""
    root = tmp_path_factory.mktemp("cache") / "adapters"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetuned, "adapters_root", lambda: root)
        yield root


def test_recipe_hash_follows_everything_that_changes_training(tiny):
    h = finetuned.recipe_hash(tiny)
    assert finetuned.recipe_hash(tiny) == h
    for change in (dict(max_steps=3), dict(learning_rate=1e-3), dict(lora_r=8), dict(train_examples=16),
                   dict(batch_size=tiny.batch_size + 1), dict(max_seq_len=256), dict(lora_alpha=8)):
        assert finetuned.recipe_hash(tiny.replace(**change)) != h, change
    # sizes that do not change training do not change the adapter
    assert finetuned.recipe_hash(tiny.replace(score_examples=3, max_new_tokens=99)) == h
    assert finetuned.recipe(tiny)["base"].startswith("loraweek/tiny-qwen2-ci@")


def test_course_adapter_trains_once_then_reads_a_read_only_cache(tiny, adapters):
    folder = finetuned.course_adapter(tiny, progress=False)
    assert folder.parent == adapters and (folder / "adapter_config.json").is_file()
    assert finetuned.recipe_hash(tiny) in folder.name
    before = sorted(p.name for p in adapters.iterdir())
    for path in [adapters, folder]:  # grading mounts the cache read-only
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.geteuid() != 0:  # root ignores permissions: the listing check below still holds
            with pytest.raises(PermissionError):
                (adapters / "probe").write_text("x")
        assert finetuned.course_adapter(tiny, progress=False) == folder
    finally:
        for path in [adapters, folder]:
            path.chmod(stat.S_IRWXU)
    assert sorted(p.name for p in adapters.iterdir()) == before, "a cached adapter must not be written again"


def test_load_course_model_and_day2_adapter(tiny, adapters):
    from peft import PeftModel

    from loraweek.data import schema
    from loraweek.generation import generate_answers

    model, tokenizer = finetuned.load_course_model(tiny, progress=False)
    assert isinstance(model, PeftModel) and not model.training
    answers = generate_answers(model, tokenizer, schema.load_split("test")[:2], max_new_tokens=8)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    base, _ = finetuned.load_base_model(tiny)
    assert not isinstance(base, PeftModel) and not base.training

    # Day 2 publishes its adapter: it wins for the same base and sizes, not for other sizes.
    published = finetuned.save_day2_adapter(model, tiny)
    assert published == finetuned.day2_adapter_dir() and (published / "recipe.json").is_file()
    assert finetuned.course_adapter(tiny, progress=False) == published
    other = tiny.replace(max_steps=3)
    assert not finetuned._day2_matches(other)
