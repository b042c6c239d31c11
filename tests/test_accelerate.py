"""Training scale-out for real: the package's training entry point under `accelerate launch`,
data parallel on two CPU processes (gloo), as Day 5 shows it.

Which launch line: with accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts ONE
process (its CPU path spawns several only through `mpirun --hostfile`).  `--multi_gpu` makes it
use torchrun, which starts the two ranks; the ci profile's `use_cpu=True` then makes accelerate
pick MULTI_CPU with the gloo backend (no GPU is needed or used).

Both ranks must take part: the Trainer gathers the non-padding token count over all
processes, so two ranks see about twice the tokens per optimizer step that one rank sees
(each rank draws its own batch of `batch_size` examples).  And the adapter must be saved
once, complete.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.data import chat, schema  # noqa: E402
from loraweek.models import load_tokenizer  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402

STEPS = 2


def _free_port() -> int:
    with socket.socket() as s:  # the default port 29500 may be taken by a parallel run
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    from loraweek.models.tiny import ensure_ci_model

    ensure_ci_model()  # build the ci model once here, not in two racing ranks
    out = tmp_path_factory.mktemp("ddp") / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    env.pop("NBGRADER_EXECUTION", None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           "-m", "loraweek.training", "--profile", "ci", "--output-dir", str(out), "--max-steps", str(STEPS),
           "--no-resume"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"accelerate launch failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out, done.stdout + done.stderr


def test_both_ranks_trained_the_same_steps(launched):
    out, log = launched
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == STEPS
    profile = get_profile("ci")
    tok = load_tokenizer(profile)
    feats, _ = chat.tokenize_examples(tok, schema.load_split("train")[: profile.train_examples], profile.max_seq_len)
    mean_len = sum(len(f["input_ids"]) for f in feats) / len(feats)
    per_step = report["tokens"] / (STEPS * profile.batch_size * profile.grad_accum * mean_len)
    # one process would give ~1.0 (examples of average length); two give ~2.0
    assert 1.6 < per_step < 2.4, f"tokens per step are {per_step:.2f} x one rank's batch: not two ranks\n{log[-2000:]}"


def test_adapter_saved_once_and_loadable(launched):
    from peft import PeftConfig
    from safetensors.torch import load_file

    out, _ = launched
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    config = PeftConfig.from_pretrained(adapter)
    assert config.r == get_profile("ci").lora_r
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k), "lora_B is all zeros: never trained"
