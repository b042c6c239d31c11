"""Library messages students cannot act on, silenced once, each with the reason.

* bitsandbytes 0.50 on CPUs with AVX512-BF16 tries to download a fused 4-bit kernel from the
  hub (``kernels-community/quantization-bitsandbytes``) when it is imported.  The course runs
  offline, so that fails and bitsandbytes logs "Failed to load CPU gemm_4bit_forward from
  kernels-community" - then uses its own CPU kernel, with the same results.  Nothing is wrong.
* peft 0.21.2 reads ``model.is_gradient_checkpointing``, which transformers 5.23 renamed
  (``is_activation_checkpointing``) with a FutureWarning; that call is inside peft, not ours.
  The course's own calls use the new names (activation_checkpointing in TrainingArguments).
* transformers' "Loading weights" / "Writing model shards" bars: a model loads in about a second
  here, and an executed notebook keeps the bar's first frame ("0/272"), a stuck bar in every cell
  that loads a model.  Only transformers' own bars are switched off; training's bar (the Trainer's
  ProgressCallback uses tqdm directly) and the course's bars stay.
"""
from __future__ import annotations

import logging
import warnings

_BNB_KERNEL_NOISE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


def quiet_library_noise() -> None:
    """Install the filters (idempotent).  Call before bitsandbytes is first imported."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(_BNB_KERNEL_NOISE))
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
