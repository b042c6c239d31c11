"""The course's fine-tuned model: one LoRA adapter that Days 3-5 share.

Day 4 (evaluation) and Day 5 (serving) need "the model Day 2 fine-tuned", but each notebook must
also open on its own (a fresh Colab runtime, a grader's machine).  `course_adapter()` returns:

1. the adapter Day 2 saved *in this runtime*, when it exists and was trained on this profile's
   base model with this profile's sizes (never while grading: submissions run side by side).  Day 2 saves it with `save_day2_adapter` into the
   well-known folder ``cache_root()/adapters/day2`` (``$LORAWEEK_CACHE``, default
   ``~/.cache/loraweek``), beside a ``recipe.json`` naming the base model it was trained on;
2. otherwise the profile's own recipe (the same `run_qlora` call Day 2 makes), trained once and
   cached under ``cache_root()/adapters/<recipe hash>``.  The hash covers the base model's
   identity, every size that changes training, and the data, so any change trains a new one.

The cache is written once, under a file lock (parallel tests and grading jobs wait for one
training run), built beside its final name and renamed, and never written again when it
exists: a grader mounts it read-only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from loraweek.cache import build_once, cache_root
from loraweek.profiles import CI_MODEL_ID, Profile, get_profile

FINETUNE_VERSION = 1   # bump when the recipe changes in a way the hash below cannot see
SEED = 0
DAY2_FOLDER = "day2"
RECIPE_FILE = "recipe.json"
# Profile fields that change what training produces (the model id is covered by base_identity).
TRAINING_SIZES = ("max_seq_len", "train_examples", "max_steps", "batch_size", "grad_accum",
                  "learning_rate", "lora_r", "lora_alpha", "quantization")


def adapters_root() -> Path:
    return cache_root() / "adapters"


def day2_adapter_dir() -> Path:
    """Where Day 2 saves its adapter so that Days 3-5 in the same runtime find it."""
    return adapters_root() / DAY2_FOLDER


def base_identity(profile: Profile) -> str:
    """What names the base model: the ci model's recipe hash, a local folder's config, or a hub id."""
    if profile.model_id == CI_MODEL_ID:
        from loraweek.models.tiny import ci_model_hash

        return f"{CI_MODEL_ID}@{ci_model_hash()}"
    folder = Path(profile.model_id)
    if (folder / "config.json").is_file():
        digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
        return f"local:{folder.name}@{digest}"
    return profile.model_id


def _data_digest() -> str:
    from loraweek.data import chat, schema

    h = hashlib.sha256(chat.SYSTEM_PROMPT.encode())
    for split in ("train", "validation"):
        h.update((schema.DATA_DIR / f"{split}.jsonl").read_bytes())
    return h.hexdigest()[:16]


def recipe(profile: Profile) -> dict:
    """Everything the fine-tuned adapter depends on (its hash names the cache folder)."""
    return {"version": FINETUNE_VERSION, "base": base_identity(profile), "seed": SEED,
            "sizes": {k: getattr(profile, k) for k in TRAINING_SIZES}, "data": _data_digest()}


def recipe_hash(profile: Profile) -> str:
    return hashlib.sha256(json.dumps(recipe(profile), sort_keys=True).encode()).hexdigest()[:16]


def _has_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() and any(folder.glob("adapter_model.*"))


def _grading() -> bool:
    # Under nbgrader, submissions run side by side: one student's Day 2 must never feed another's Day 4.
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def _day2_matches(profile: Profile) -> bool:
    folder = day2_adapter_dir()
    if _grading():
        return False
    if not _has_adapter(folder) or not (folder / RECIPE_FILE).is_file():
        return False
    saved = json.loads((folder / RECIPE_FILE).read_text())
    # Same base and sizes: a grading-size (4-step) Day 2 run never stands in for the real one.
    want = recipe(profile)
    return saved.get("base") == want["base"] and saved.get("sizes") == want["sizes"]


def save_day2_adapter(model, profile: Profile | None = None) -> Path | None:
    """Day 2: publish the trained adapter where `course_adapter()` finds it in this runtime.

    Written beside and renamed, so a reader never sees half an adapter.  Returns the folder, or
    None (with a printed reason) when the cache cannot be written (grading mounts it read-only)."""
    profile = profile or get_profile()
    target = day2_adapter_dir()
    if _grading():
        print("grading: the adapter is not published (each submission's Day 4/5 uses the class's cached one)")
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".day2-"))
    except OSError as err:
        print(f"the adapter stays in this notebook's folder only: cannot write {target.parent} ({err})")
        return None
    try:
        model.save_pretrained(tmp)
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe(profile), indent=1))
        old = target.parent / f".day2-old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:  # e.g. two Day 2 runs publishing at the same moment
        print(f"could not publish the adapter to {target} ({err}); Days 3-5 will train their own")
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _train_recipe(profile: Profile, folder: Path, progress: bool) -> None:
    """Train the profile's recipe and save the adapter into `folder` (the run's checkpoints go to
    a scratch folder beside it, removed afterwards)."""
    from loraweek.training import run_qlora

    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".run-") as scratch:
        t0 = time.perf_counter()
        result = run_qlora(profile, scratch, resume=False, progress=progress, seed=SEED)
        result.model.save_pretrained(folder)
        (folder / RECIPE_FILE).write_text(json.dumps({**recipe(profile), "report": str(result.report)}, indent=1))
        print(f"course adapter trained in {time.perf_counter() - t0:.0f} s")


def course_adapter(profile: Profile | None = None, progress: bool = True) -> Path:
    """Folder of the course's fine-tuned LoRA adapter for this profile (adapter_config.json + weights).

    Day 2's saved adapter in this runtime when it exists and matches the profile's base model and
    sizes, else the profile's recipe trained once and cached under cache_root()/adapters/<recipe hash>
    (`loraweek.cache.build_once`: never touches an existing cache, which may be read-only)."""
    profile = profile or get_profile()
    if _day2_matches(profile):
        return day2_adapter_dir()
    target = adapters_root() / f"{profile.name}-{recipe_hash(profile)}"
    return build_once(target, _has_adapter, lambda folder: _train_recipe(profile, folder, progress),
                      f"training the course adapter for profile {profile.name!r} once "
                      f"({profile.max_steps} {'QLoRA' if profile.quantization else 'LoRA'} steps on {profile.model_id}) "
                      f"into {target} ...")


def load_base_model(profile: Profile | None = None, quantization: str | None = "profile"):
    """(base model in eval mode, tokenizer): the 'before' side of before/after.  `quantization`: "nf4",
    "int8", None, or "profile" (default): the base the profile's course adapter was trained on."""
    from loraweek.models import load_model, load_tokenizer

    profile = profile or get_profile()
    if quantization == "profile":
        quantization = profile.quantization
    tokenizer = load_tokenizer(profile)
    model = load_model(profile, quantization=quantization)
    model.config.use_cache = True  # inference: the KV cache makes generation fast
    return model.eval(), tokenizer


def load_course_model(profile: Profile | None = None, quantization: str | None = "profile", progress: bool = True):
    """(PeftModel in eval mode, tokenizer) = base from loraweek.models + the course adapter."""
    from peft import PeftModel

    profile = profile or get_profile()
    adapter = course_adapter(profile, progress=progress)
    base, tokenizer = load_base_model(profile, quantization)
    return PeftModel.from_pretrained(base, adapter).eval(), tokenizer
