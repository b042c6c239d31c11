"""Validation curves from step 0, early stopping that really stops, and what paged AdamW does here.

Real runs on the ci model (no mocks): one short run checks `training.validation_steps` against what
the Trainer logs, the profiles are then held to >= 8 validation points, one over-fitting run at
Day 4's ci sizes must be stopped by EarlyStoppingCallback, and the optimizer-state measurement
reports whatever bitsandbytes does on this machine."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))  # no-op if already importable
from loraweek import profiles, regularisation, training  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.models import load_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def ci():
    return profiles.get_profile("ci")  # CPU, fp32


@pytest.fixture(scope="module")
def tok(ci):
    return load_tokenizer(ci, verbose=False)


def _features(tok, profile, split, n):
    feats, _ = chat.tokenize_examples(tok, schema.load_splits()[split][:n], profile.max_seq_len)
    return feats


def test_validation_curve_starts_at_step_0_and_ends_at_the_last_step(ci, tok, tmp_path):
    """eval_on_start gives step 0 in log_history; a last step that is not a multiple is evaluated
    too; the report's before / after are the curve's ends, with no repeated point."""
    from peft import get_peft_model

    from loraweek.models import load_model, lora_config

    steps, every = 5, 2
    profile = ci.replace(eval_every=every, batch_size=4)
    model = get_peft_model(load_model(profile, quantization=None), lora_config(profile))
    result = training.train(model, tok, _features(tok, profile, "train", 8), _features(tok, profile, "validation", 4),
                            profile, tmp_path, max_steps=steps, resume=False, save_every=10 ** 9, progress=False,
                            print_report=False)
    h = result.history
    assert h.eval_steps == training.validation_steps(steps, every) == [0, 2, 4, 5]
    assert result.report.eval_loss_before == h.eval_loss[0] and result.report.eval_loss_after == h.eval_loss[-1]
    assert (tmp_path / "eval_loss_before.json").exists()  # what a resumed run reads back


@pytest.mark.parametrize("name", profiles.PROFILE_NAMES)
def test_every_profile_draws_a_validation_curve(monkeypatch, name):
    """Day 2's run has >= 8 validation points in every profile (grading sizes: 2 steps, 2 points)."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(profiles.SIZES_ENV_VAR, raising=False)
    monkeypatch.setattr(profiles, "smollm2_folder", lambda: "/converted/smollm2")  # sizes only: no conversion
    p = profiles.get_profile(name)
    points = training.validation_steps(p.max_steps, p.eval_every)
    assert len(points) >= 8 and points[0] == 0, (name, p.max_steps, p.eval_every, points)
    reg = training.validation_steps(p.reg_steps, p.reg_eval_every)
    assert len(reg) >= 8, (name, "Day 4's regularisation runs", reg)


def test_epochs_and_steps(ci):
    assert regularisation.epochs(ci.reg_steps, ci.reg_train_examples, ci) == ci.reg_steps * ci.batch_size / ci.reg_train_examples
    assert regularisation.steps_per_epoch(ci.batch_size + 1, ci) == 2
    with pytest.raises(ValueError, match="train_examples must be positive"):
        regularisation.epochs(10, 0, ci)


def test_early_stopping_stops_an_over_fitting_run_at_ci_sizes(ci, tok, tmp_path):
    """Day 4's over-fitting run, at its ci sizes and learning rate: EarlyStoppingCallback ends it
    before reg_steps, `patience` evaluations after the best one, whose checkpoint is restored."""
    train_feats = _features(tok, ci, "train", ci.reg_train_examples)
    eval_feats = _features(tok, ci, "validation", ci.reg_eval_examples)
    run = regularisation.run_regime(regularisation.OVERFITTING, ci, tok, train_feats, eval_feats, tmp_path,
                                    steps=ci.reg_steps, eval_every=ci.reg_eval_every, patience=ci.reg_patience,
                                    learning_rate=2 * ci.learning_rate)
    h = run.history
    print(f"\nover-fitting run: stopped at {run.stopped_at}/{run.max_steps}, best {run.best_eval_loss:.3f} at "
          f"step {run.best_step}; curve {list(zip(h.eval_steps, [round(x, 3) for x in h.eval_loss]))}")
    assert h.eval_steps[0] == 0 and len(h.eval_steps) >= 8
    assert run.stopped_early, f"ran all {run.max_steps} steps: validation loss {h.eval_loss}"
    assert run.stopped_at - run.best_step == ci.reg_patience * ci.reg_eval_every
    assert all(loss > run.best_eval_loss for step, loss in zip(h.eval_steps, h.eval_loss) if step > run.best_step)
    assert run.gap(h.eval_steps[-1]) > run.gap(h.eval_steps[1])  # the gap opens


def test_optimizer_states_are_measured_and_paged_adamw_is_reported(ci, tok, tmp_path):
    """adamw_torch keeps two fp32 moments per trainable parameter; paged_adamw_8bit's behaviour on
    this machine is printed: it runs or says why not (bitsandbytes' own words)."""
    train_feats = _features(tok, ci, "train", 4)
    eval_feats = _features(tok, ci, "validation", 2)
    adam = regularisation.optimizer_states("adamw_torch", ci, tok, train_feats, eval_feats, tmp_path / "adam")
    assert adam.ran and adam.by_dtype["float32"] >= 8 * adam.trainable and not adam.paged
    paged = regularisation.optimizer_states("paged_adamw_8bit", ci, tok, train_feats, eval_feats, tmp_path / "paged")
    print(f"\npaged_adamw_8bit on {ci.device}: ran={paged.ran}, {paged.bytes_per_parameter:.2f} bytes/parameter "
          f"(adamw_torch {adam.bytes_per_parameter:.2f}), paged={paged.paged}, note: {paged.note or '-'}")
    if paged.ran:
        assert "uint8" in paged.by_dtype, "8-bit states expected for the LoRA tensors above min_8bit_size"
        assert paged.state_bytes < adam.state_bytes
        assert not paged.paged, "ci trains on the CPU: bitsandbytes has no unified memory to page to there"
    else:
        assert paged.note, "a run that did not happen must say why"
    bogus = regularisation.optimizer_states("adamw_nonexistent", ci, tok, train_feats, eval_feats, tmp_path / "bogus")
    assert not bogus.ran and "adamw_nonexistent" in bogus.note
