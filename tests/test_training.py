"""Training plumbing: padding-free batches are exact, a killed run resumes, QLoRA really learns."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import training  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.models import load_model, load_tokenizer  # noqa: E402
from loraweek.cache import cache_root  # noqa: E402


@pytest.fixture(scope="module")
def tok(ci):
    return load_tokenizer(ci)


# --------------------------------------------------------------------------- (a) batching
def _loss(model, batch):
    with torch.no_grad():
        return model(**batch).loss.item()


def test_padding_free_batch_equals_padded_batch(ci, tok):
    """Same 6 examples, same fp32 model: the loss of the packed row (restarting position_ids)
    equals the loss of the right-padded batch.  If attention crossed examples inside the
    packed row, the later examples would see the earlier ones and the loss would move."""
    torch.manual_seed(0)
    model = load_model(ci, quantization=None).eval()
    model.config.use_cache = False
    assert next(model.parameters()).dtype == torch.float32
    examples = schema.load_split("train")[:6]
    features, dropped = chat.tokenize_examples(tok, examples, ci.max_seq_len)
    assert dropped == 0 and len(features) == 6
    assert len({len(f["input_ids"]) for f in features}) > 1, "want unequal lengths, so padding happens"

    padded = training.make_collator(tok, "padded")([dict(f) for f in features])
    packed = training.make_collator(tok, "padding_free")([dict(f) for f in features])
    assert padded["input_ids"].shape[0] == 6 and (padded["attention_mask"] == 0).any()
    assert packed["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    assert "attention_mask" not in packed
    assert (packed["position_ids"] == 0).sum().item() == 6  # positions restart at every example
    # the same tokens are trained either way (the first token of each example is prompt: -100)
    assert (padded["labels"] != -100).sum() == (packed["labels"] != -100).sum()

    loss_padded, loss_packed = _loss(model, padded), _loss(model, packed)
    assert loss_packed == pytest.approx(loss_padded, rel=1e-4, abs=0)

    # negative control: the same packed row with positions 0..N-1 is one long sequence in
    # which every example attends to all the ones before it; the loss is then different
    leaky = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    # (by far more than the float noise between the packed and padded losses)
    noise = max(abs(loss_packed - loss_padded), 1e-7 * loss_padded)
    assert abs(_loss(model, leaky) - loss_padded) > 100 * noise


def test_make_collator_rejects_unknown_batching(tok):
    with pytest.raises(ValueError, match="batching must be one of"):
        training.make_collator(tok, "packed")


# --------------------------------------------------------------------------- (b) resume
MAX_STEPS, SAVE_EVERY, KILL_AFTER = 16, 4, 8  # one step is ~0.5 s on 2 idle CPU cores: 8 steps of margin
CHECKPOINT_TIMEOUT_S = 480  # ~40 s on 2 idle cores; generous for a CPU shared with other jobs


def _checkpoint_done(out: Path, step: int) -> bool:
    """trainer_state.json is the last file Trainer writes into a checkpoint."""
    state = out / f"checkpoint-{step}" / "trainer_state.json"
    try:
        return json.loads(state.read_text())["global_step"] == step
    except (OSError, ValueError, KeyError):
        return False


def test_training_resumes_after_a_kill(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "loraweek.training", "--profile", "ci", "--output-dir", str(out),
           "--max-steps", str(MAX_STEPS), "--save-every", str(SAVE_EVERY)]
    env = dict(os.environ, LORAWEEK_CACHE=str(cache_root()), HF_HUB_OFFLINE="1")
    env.pop("NBGRADER_EXECUTION", None)
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
            while not _checkpoint_done(out, KILL_AFTER):
                assert proc.poll() is None, f"training exited early:\n{first_log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no checkpoint-{KILL_AFTER} after {CHECKPOINT_TIMEOUT_S} s"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)  # a Colab disconnect: no cleanup, no final save
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed; raise MAX_STEPS"
    assert not (out / "report.json").exists() and not (out / "adapter").exists()
    before = json.loads((out / "eval_loss_before.json").read_text())["eval_loss"]

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    found = re.search(r"\(resumed from checkpoint-(\d+)\)", second.stdout)
    assert found, f"no 'resumed from checkpoint-N' in the report:\n{second.stdout[-2000:]}"
    resumed_step = int(found.group(1))
    assert KILL_AFTER <= resumed_step < MAX_STEPS and resumed_step % SAVE_EVERY == 0

    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == MAX_STEPS
    assert report["resumed_from"] and Path(report["resumed_from"]).name == f"checkpoint-{resumed_step}"
    assert report["eval_loss_before"] == before  # measured once, before step 1, and kept
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    checkpoints = sorted((int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")))
    assert checkpoints[-1] == MAX_STEPS
    state = json.loads((out / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS


# --------------------------------------------------------------------------- (c) QLoRA
def test_short_qlora_run_learns_with_a_4bit_base(ci, tmp_path):
    import bitsandbytes as bnb

    profile = ci.replace(max_steps=8, eval_every=4, save_every=100, train_examples=128, eval_examples=32)
    result = training.run_qlora(profile, tmp_path, progress=False)
    report = result.report
    assert report.steps == 8
    assert report.eval_loss_after < report.eval_loss_before
    assert report.tokens > 0 and report.tokens_per_s > 0
    assert report.peak_memory_mb > 0 and report.wall_s >= report.train_s > 0
    assert report.resumed_from is None and report.dropped_too_long == 0
    assert json.loads((tmp_path / "report.json").read_text())["steps"] == 8
    assert result.history.eval_steps[-1] == 8 and len(result.history.train_loss) > 0

    model = result.model
    wrapped = [m for m in model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")]
    assert len(wrapped) == 7 * model.config.num_hidden_layers  # q k v o gate up down, every layer
    for module in wrapped:
        assert isinstance(module.base_layer, bnb.nn.Linear4bit), type(module.base_layer)
        assert module.base_layer.weight.quant_type == "nf4"
        assert module.base_layer.weight.quant_state.nested  # double quantization
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable), [n for n in trainable if "lora_" not in n]
    assert sum("lora_A" in n for n in trainable) == sum("lora_B" in n for n in trainable) == len(wrapped)


def test_half_written_checkpoint_is_not_resumed_from(tmp_path):
    from loraweek.training import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"num_input_tokens_seen": 10}')
    (tmp_path / "checkpoint-8").mkdir()  # a save killed half-way: no trainer_state.json yet
    (tmp_path / "checkpoint-8" / "adapter_model.safetensors").write_bytes(b"")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
