"""Peak memory of a block of work, on GPU or CPU.

On CUDA we ask the caching allocator (`max_memory_allocated`): the tensors' true peak.
On CPU there is no allocator counter, so a background thread samples the process's
resident set size (RSS) every few milliseconds; the peak RSS minus the RSS at the
start is what the block added.
"""
from __future__ import annotations

import threading
import time

import psutil
import torch

MB = 1024 ** 2


class PeakMemory:
    """`with PeakMemory() as mem: ...` then `mem.peak_mb`, `mem.added_mb`, `mem.kind`."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.kind = "CUDA allocated" if torch.cuda.is_available() else "CPU RSS"
        self.peak_mb = self.start_mb = 0.0

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / MB
        else:
            self._proc = psutil.Process()
            self.start_mb = self._peak = self._proc.memory_info().rss / MB
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss / MB)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / MB
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._peak, self._proc.memory_info().rss / MB)
        return False

    @property
    def added_mb(self) -> float:
        return self.peak_mb - self.start_mb


def saved_activation_mb(model, batch: dict) -> float:
    """MB of tensors autograd keeps for the backward pass of one forward on `batch`.

    This is the part of training memory that grows with batch size x sequence length
    (and that gradient checkpointing trades for recomputation).  Counted exactly via
    autograd's saved-tensor hooks, each storage once, so it is the same on CPU and GPU.
    The forward really runs, so this needs the memory it counts: for a batch too big for
    the machine, use `projected_saved_activation_mb`."""
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    # No backward: the graph (and every tensor it saved) is freed with `loss`, and the
    # count is complete once the forward has run.
    del loss
    model.zero_grad(set_to_none=True)
    return total / MB


def projected_saved_activation_mb(model, batch: dict, rows: tuple[int, int] = (2, 3)) -> float:
    """`saved_activation_mb` of the whole `batch`, counted on two slices of it.

    Every tensor autograd saves either has the batch as a dimension (activations, logits)
    or does not depend on it (a dequantized weight), so the count is affine in the number
    of rows at a fixed padded length: count the first `rows[0]` and `rows[1]` rows (same
    length as the batch) and extend the line.  Peak memory is that of `rows[1]` rows, so a
    laptop can show what batch 16 *would* need without allocating it (tests compare the
    projection with a direct count).  Two and three rows, not one and two, so that no
    single-row special case enters the line."""
    n = len(batch["input_ids"])
    small, large = rows
    if n <= large:
        return saved_activation_mb(model, batch)
    first = saved_activation_mb(model, _first_rows(batch, small, n))
    second = saved_activation_mb(model, _first_rows(batch, large, n))
    return first + (n - small) * (second - first) / (large - small)


def _first_rows(batch: dict, k: int, n: int) -> dict:
    return {name: v[:k] if getattr(v, "shape", ())[:1] == (n,) else v for name, v in batch.items()}
