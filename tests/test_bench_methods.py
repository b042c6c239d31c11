"""scripts/bench_methods.py --memory-only: one real (tiny) training run per method, in its own
process, reported against a T4's memory; and a clear error for a model folder that is not one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = "scripts.bench_methods"  # scripts/bench_methods.py, run as a module from the repository root


def bench(*args):
    return subprocess.run([sys.executable, "-m", BENCH, *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)


def test_memory_only_reports_each_methods_peak_against_a_t4(tmp_path):
    done = bench("--profile", "ci", "--methods", "full", "lora", "--memory-only", "--steps", "1",
                 "--work", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {m: json.loads((tmp_path / f"{m}.json").read_text()) for m in ("full", "lora")}
    assert rows["full"]["trainable"] > 5 * rows["lora"]["trainable"] > 0
    assert rows["full"]["states_mb"] == pytest.approx(rows["full"]["trainable"] * 12 / 2 ** 20)
    for row in rows.values():
        assert row["peak_mb"] > row["weights_mb"] > 0, row  # the run held at least its own weights
    assert "fits a T4 (15 GiB)?" in done.stdout and "| full | 1," in done.stdout and "| lora |" in done.stdout


def test_a_model_folder_without_a_config_is_named(tmp_path):
    done = bench("--model", str(tmp_path), "--memory-only")
    assert done.returncode == 2
    assert f"--model {tmp_path}: no config.json there" in done.stderr
