"""Will vLLM's multi-LoRA serving load this adapter?  Check before deploying, not at startup.

vLLM serves a peft adapter folder unmerged (`vllm serve BASE --enable-lora --lora-modules
name=path`) and refuses, when the server starts or the adapter loads, an adapter that
(checked against vllm/lora/peft_helper.py and vllm/config/lora.py):

* has a rank above `--max-lora-rank` (default 16; allowed values 1, 8, 16, 32, 64, 128, 256,
  320, 512): "LoRA rank 32 is greater than max_lora_rank 16";
* saves whole modules (`modules_to_save`, e.g. a trained `lm_head` or `embed_tokens`) or new
  token rows (`trainable_token_indices`): "vLLM only supports modules_to_save being None";
* is DoRA ("vLLM does not yet support DoRA") or trains biases ("Adapter bias cannot be used
  without bias_enabled");
* targets a module the model has no LoRA layer for (for Qwen2: the attention and MLP
  projections; no embedding or lm_head LoRA).

`check_vllm_adapter` reads `adapter_config.json` and the weight names and returns every problem
at once, each naming the field and what vLLM expects.  `vllm_serve_command` prints the command.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

VLLM_DEFAULT_MAX_LORA_RANK = 16
VLLM_ALLOWED_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Qwen2 in vLLM (vllm/model_executor/models/qwen2.py): qkv_proj packs q/k/v, gate_up_proj packs
# gate/up; o_proj and down_proj are plain.  `embedding_modules` is empty: no embedding LoRA.
QWEN2_LORA_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class VllmCheck:
    adapter: Path
    rank: int | None = None
    target_modules: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self):
        head = f"vLLM LoRA check of {self.adapter}: rank {self.rank}, targets {', '.join(self.target_modules)}"
        if self.ok:
            return head + " -> loadable"
        return head + " -> NOT loadable:\n" + "\n".join(f"  - {p}" for p in self.problems)


def smallest_max_lora_rank(rank: int) -> int:
    """The `--max-lora-rank` to pass: the smallest allowed value >= rank, never below the default."""
    for allowed in VLLM_ALLOWED_MAX_LORA_RANKS:
        if allowed >= max(rank, VLLM_DEFAULT_MAX_LORA_RANK):
            return allowed
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank {VLLM_ALLOWED_MAX_LORA_RANKS[-1]}")


def _weight_names(folder: Path) -> list[str]:
    if (folder / "adapter_model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(folder / "adapter_model.safetensors", framework="pt") as f:
            return list(f.keys())
    import torch

    return list(torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True))


def _read_config(folder: Path, check: VllmCheck) -> dict | None:
    if not folder.is_dir():
        check.problems.append(f"adapter folder {folder} does not exist")
        return None
    path = folder / "adapter_config.json"
    if not path.exists():
        check.problems.append(f"{path} is missing: vLLM needs peft's adapter_config.json beside the weights")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        check.problems.append(f"{path} is not valid JSON ({exc})")
        return None


def check_vllm_adapter(adapter_dir, max_lora_rank: int = VLLM_DEFAULT_MAX_LORA_RANK,
                       supported_modules=QWEN2_LORA_MODULES) -> VllmCheck:
    """Every reason vLLM (`--max-lora-rank max_lora_rank`) would refuse this adapter folder."""
    folder = Path(adapter_dir)
    check = VllmCheck(folder)
    cfg = _read_config(folder, check)
    if cfg is None:
        return check
    problems = check.problems
    if cfg.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {cfg.get('peft_type')!r}: vLLM serves only LoRA adapters")
    rank = cfg.get("r")
    if not isinstance(rank, int) or rank < 1:
        problems.append(f"r is {rank!r}: expected a positive integer rank")
        rank = None
    check.rank = rank
    ranks = [rank] if rank else []
    ranks += [r for r in (cfg.get("rank_pattern") or {}).values() if isinstance(r, int)]
    if ranks and max(ranks) > max_lora_rank:
        problems.append(f"r (largest rank {max(ranks)}) is greater than max_lora_rank {max_lora_rank}: "
                        f"start vLLM with --max-lora-rank {smallest_max_lora_rank(max(ranks))} or train r <= {max_lora_rank}")
    targets = cfg.get("target_modules")
    if isinstance(targets, str):
        problems.append(f"target_modules is the pattern {targets!r}: list the module names explicitly "
                        f"({', '.join(sorted(supported_modules))}) so the check, and vLLM, can match them")
        targets = []
    check.target_modules = sorted(targets or [])
    if not targets:
        problems.append("target_modules is empty: the adapter changes nothing")
    unsupported = sorted(set(targets or []) - set(supported_modules))
    if unsupported:
        problems.append(f"target_modules {unsupported} have no LoRA support in vLLM for this model "
                        f"(supported: {', '.join(sorted(supported_modules))}; no embed_tokens / lm_head LoRA)")
    if cfg.get("modules_to_save"):
        problems.append(f"modules_to_save is {cfg['modules_to_save']}: vLLM only supports modules_to_save being "
                        "None (fully trained embed_tokens / lm_head cannot be served unmerged: merge instead)")
    if cfg.get("trainable_token_indices"):
        problems.append("trainable_token_indices is set: vLLM cannot load trained token rows (do not add tokens, "
                        "or merge and serve the merged model)")
    if cfg.get("use_dora"):
        problems.append("use_dora is true: vLLM does not support DoRA adapters (merge and serve the merged model)")
    if cfg.get("bias", "none") != "none" or cfg.get("lora_bias"):
        problems.append(f"bias is {cfg.get('bias')!r} / lora_bias {cfg.get('lora_bias')!r}: vLLM's LoRA has no "
                        "adapter biases; train with bias='none'")
    if not any((folder / name).exists() for name in WEIGHT_FILES):
        problems.append(f"no weights in {folder}: expected {' or '.join(WEIGHT_FILES)}")
    else:
        extra = sorted({n for n in _weight_names(folder) if "lm_head" in n or "embed_tokens" in n})
        if extra:
            problems.append(f"the weights hold {len(extra)} lm_head / embed_tokens tensors (e.g. {extra[0]}): "
                            "vLLM rejects them as unsupported LoRA weights")
    return check


def vllm_serve_command(base_model: str, adapters: dict[str, str | Path], max_lora_rank: int | None = None,
                       dtype: str | None = None) -> str:
    """`vllm serve BASE --enable-lora --lora-modules name=path ... --max-lora-rank N` for these adapters.

    `max_lora_rank` defaults to the smallest allowed value that fits the largest adapter; `dtype`
    "half" on a T4 (no bf16)."""
    if not adapters:
        raise ValueError("adapters is empty: pass {name: adapter folder}")
    ranks = []
    for name, path in adapters.items():
        if not name or "=" in name or " " in name:
            raise ValueError(f"adapter name {name!r}: expected a non-empty name without '=' or spaces")
        check = check_vllm_adapter(path, max_lora_rank=max_lora_rank or VLLM_ALLOWED_MAX_LORA_RANKS[-1])
        if not check.ok:
            raise ValueError(str(check))
        ranks.append(check.rank)
    rank = max_lora_rank or smallest_max_lora_rank(max(ranks))
    parts = ["vllm", "serve", base_model, "--enable-lora", "--lora-modules"]
    parts += [f"{name}={path}" for name, path in adapters.items()]
    parts += ["--max-lora-rank", str(rank), "--max-loras", str(len(adapters))]
    if dtype:
        parts += ["--dtype", dtype]
    return shlex.join(parts)


def print_vllm_command(base_model: str, adapters: dict[str, str | Path], **kwargs) -> str:
    command = vllm_serve_command(base_model, adapters, **kwargs)
    print(command)
    return command
