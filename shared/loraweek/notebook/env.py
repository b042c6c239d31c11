"""What a notebook prints first: the profile it runs in and the versions it runs with."""
from __future__ import annotations

import importlib.metadata as md
import platform

import torch

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "evaluate", "loraweek")


def describe(profile=None) -> str:
    lines = [f"python {platform.python_version()} on {platform.system()} {platform.machine()}"]
    for name in PACKAGES:
        try:
            lines.append(f"{name:>13} {md.version(name)}")
        except md.PackageNotFoundError:
            lines.append(f"{name:>13} (not installed)")
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        lines.append(f"GPU: {torch.cuda.get_device_name(0)}, {total / 2**30:.1f} GiB, bf16 "
                     f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        lines.append(f"no GPU: CPU with {torch.get_num_threads()} threads")
    if profile is not None:
        lines.append(f"profile: {profile.name} ({profile.reason}); model {profile.model_id}; "
                     f"compute dtype {str(profile.compute_dtype).replace('torch.', '')}")
    return "\n".join(lines)


def print_environment(profile=None, notebook: str | None = None) -> None:
    """The versions and the profile; with `notebook` (its file's stem) also how long it takes in each
    profile (`loraweek.notebook.timings`)."""
    print(describe(profile))
    if notebook is not None:
        from loraweek.notebook import timings

        print(timings.describe(notebook, getattr(profile, "name", None)))
