"""Compressing the merged model for serving, measured on a CPU: int8, NF4 and magnitude pruning.

Every variant starts from the same merged export (`export.export_merged`) and is measured the
same way, so the numbers differ only by the compression:

* ``fp32``: the merged model as exported (the reference every other variant is compared with);
* ``int8``: PyTorch dynamic quantization (``torch.ao.quantization.quantize_dynamic`` on every
  ``nn.Linear``): weights stored as int8 with one scale per matrix, activations quantized on the
  fly at each matmul.  Post-training, no calibration data.  CPU only;
* ``nf4``: bitsandbytes 4-bit NormalFloat (QLoRA's data type), loaded with ``load_in_4bit``:
  weights in blocks of 64, dequantized to fp32 for each matmul;
* ``pruned-XX``: ``torch.nn.utils.prune.l1_unstructured`` on the weight of every Linear of the
  decoder blocks (not the LM head, which shares its matrix with the embeddings): the XX % of
  weights with the smallest magnitude set to zero, then made permanent (``prune.remove``).

What is measured: the weights' bytes in memory (every tensor of the state dict once; tied weights
counted once), their bytes on disk (the format the variant can be saved and reloaded in), the
seconds per generated token at batch 1 (the server's engine, `measure.decode_speed`: a fixed
number of tokens, prompt included), and the agreement of the answers with fp32's on the same
messages: the same parsed routing answer (intent, priority, language) and valid routing JSON.

Unstructured zeros are still stored and multiplied: a dense CPU matmul does not skip them, so a
pruned model is as large and as fast as the dense one.  Speed needs structure (2:4 sparsity on
GPUs with sparse tensor cores, whole heads or channels removed) or a sparse storage format.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

ROUTING_FIELDS = ("intent", "priority", "language")
WEIGHT_SUFFIXES = (".safetensors", ".pt")


def _check_folder(folder) -> Path:
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"merged_dir {path} has no config.json: expected a folder written by "
                                "loraweek.serving.export.export_merged")
    return path


def load_fp32(merged_dir):
    """The merged export on the CPU in fp32, in eval mode, with the KV cache on."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(_check_folder(merged_dir), dtype=torch.float32,
                                                 device_map={"": "cpu"})
    return model.eval()


def load_nf4(merged_dir):
    """The merged export quantized to NF4 by bitsandbytes while loading (compute in fp32, CPU)."""
    from transformers import AutoModelForCausalLM

    from loraweek.models import bnb_4bit_config, keep_cpu_4bit_trainable

    model = AutoModelForCausalLM.from_pretrained(_check_folder(merged_dir), dtype=torch.float32,
                                                 device_map={"": "cpu"},
                                                 quantization_config=bnb_4bit_config(torch.float32))
    keep_cpu_4bit_trainable(model)  # bitsandbytes' CPU repacking trap (see models.py)
    return model.eval()


@contextlib.contextmanager
def _torch_int8_deprecations():
    """torch 2.13 marks torch.ao.quantization and its quantized tensors deprecated (in favour of
    torchao's `quantize_`; pytorch/ao#2259): the notebook says so once, instead of a warning per layer.
    The eager API still works in the pinned torch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*TypedStorage is deprecated.*")
        yield


def quantize_int8(model):
    """A dynamically quantized int8 copy of `model` (every nn.Linear; the input is left as it is)."""
    with _torch_int8_deprecations():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                      dtype=torch.qint8).eval()


def prunable_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    """The Linear layers of the decoder blocks: every nn.Linear except the output head."""
    head = model.get_output_embeddings()
    return [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]


def prune_linears(model, amount: float):
    """A copy of `model` with `amount` (0 <= amount < 1) of each decoder Linear's weights, the
    smallest in magnitude, set to zero for good (l1_unstructured, then prune.remove)."""
    from torch.nn.utils import prune

    if not isinstance(amount, (int, float)) or not 0 <= amount < 1:
        raise ValueError(f"amount must be a share of weights in [0, 1), got {amount!r}")
    pruned = copy.deepcopy(model)
    for _, linear in prunable_linears(pruned):
        prune.l1_unstructured(linear, name="weight", amount=float(amount))
        prune.remove(linear, "weight")  # weight = weight_orig * mask, the mask and copy dropped
    return pruned.eval()


def linear_sparsity(model) -> float:
    """The share of exact zeros in the decoder Linear weights."""
    zeros = total = 0
    for _, linear in prunable_linears(model):
        zeros += int((linear.weight == 0).sum())
        total += linear.weight.numel()
    if total == 0:
        raise ValueError("the model has no Linear layer outside its output head")
    return zeros / total


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):  # torch's packed int8 Linear saves (weight, bias)
        for item in value:
            yield from _tensors(item)


def memory_bytes(model) -> int:
    """Bytes of every tensor in the model's state dict, each storage once (a tied LM head is the
    embedding's matrix), packed int8 and 4-bit weights with their scales included."""
    seen, total = set(), 0
    for value in model.state_dict().values():
        for t in _tensors(value):
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.dtype, tuple(t.shape)) \
                if not t.is_quantized else id(t)
            if key in seen:
                continue
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def save_variant(model, out_dir) -> Path:
    """Save `model` where it can be loaded again: save_pretrained (safetensors) for fp32, pruned and
    NF4; a state dict (`torch.save`) for torch's int8 modules, which safetensors cannot hold."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(m.__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        torch.save(model.state_dict(), out / "int8_state_dict.pt")
        model.config.save_pretrained(out)
    else:
        model.save_pretrained(out)
    return out


def load_int8(merged_dir, saved_dir):
    """Reload an int8 variant saved by `save_variant`: the fp32 skeleton quantized, then its state."""
    model = quantize_int8(load_fp32(merged_dir))
    with _torch_int8_deprecations():
        model.load_state_dict(torch.load(Path(saved_dir) / "int8_state_dict.pt", weights_only=True))
    return model.eval()


def disk_bytes(folder) -> int:
    """Bytes of the weight files (safetensors / .pt) in a saved variant's folder."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.suffix in WEIGHT_SUFFIXES)


@dataclass
class VariantRun:
    name: str
    answers: list[str]
    memory_bytes: int
    disk_bytes: int
    seconds_per_token: float


def measure_variant(name: str, model, tokenizer, examples, *, speed_messages: list[str], max_new_tokens: int,
                    speed_tokens: int, save_dir) -> VariantRun:
    """Answers for `examples` (greedy, as Day 2 scores them), bytes in memory and on disk, and
    seconds per generated token at batch 1 with the server's engine."""
    from loraweek.generation import generate_answers
    from loraweek.serving.backend import ServedModel, end_of_turn_ids
    from loraweek.serving.measure import decode_speed

    if not examples or not speed_messages:
        raise ValueError("examples and speed_messages must be non-empty lists")
    answers = generate_answers(model, tokenizer, examples, max_new_tokens=max_new_tokens)
    served = ServedModel(model, tokenizer, {name: True}, end_of_turn_ids(tokenizer, model.generation_config))
    speed = decode_speed(served, speed_messages, speed_tokens)
    return VariantRun(name, answers, memory_bytes(model), disk_bytes(save_variant(model, save_dir)),
                      1.0 / speed["tokens_per_s"])


def routing(answer: str) -> tuple | None:
    """The routing decision of an answer (intent, priority, language), None if it is not valid JSON."""
    from loraweek.data.answer import parse_answer

    parsed = parse_answer(answer)
    return None if parsed is None else tuple(parsed[f] for f in ROUTING_FIELDS)


def agreement(reference: VariantRun, run: VariantRun) -> float:
    """Share of messages where `run` gives the same routing decision as `reference` (an invalid
    answer agrees with nothing, not even another invalid one)."""
    if len(reference.answers) != len(run.answers):
        raise ValueError(f"{run.name} has {len(run.answers)} answers, {reference.name} {len(reference.answers)}: "
                         "measure both on the same messages")
    same = [routing(a) is not None and routing(a) == routing(b) for a, b in zip(run.answers, reference.answers)]
    return sum(same) / len(same)


def valid_share(run: VariantRun) -> float:
    return sum(routing(a) is not None for a in run.answers) / len(run.answers)


def table(runs: list[VariantRun]) -> str:
    """One row per variant against the first (the reference)."""
    ref = runs[0]
    lines = [f"{'variant':<12}{'memory MB':>10}{'disk MB':>9}{'vs fp32':>8}{'ms/token':>10}{'valid JSON':>11}"
             f"{'same routing':>14}"]
    for run in runs:
        lines.append(f"{run.name:<12}{run.memory_bytes / 1e6:>10.2f}{run.disk_bytes / 1e6:>9.2f}"
                     f"{run.memory_bytes / ref.memory_bytes:>8.0%}{run.seconds_per_token * 1e3:>10.1f}"
                     f"{valid_share(run):>11.0%}{agreement(ref, run):>14.0%}")
    return "\n".join(lines)
