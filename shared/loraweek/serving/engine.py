"""Batch what is waiting: one generation thread, many HTTP requests.

Each HTTP request becomes a `GenRequest` in a queue.  The generation thread takes
every waiting request for the same model name (up to `max_batch`), left-pads the
prompts into one batch and decodes token by token with a KV cache.  One forward pass
for 8 rows costs far less than 8 passes for 1 row (the weights are read once), which is
where the throughput of concurrent clients comes from.

Per row: its own sampling (greedy at temperature 0, else temperature + top-p with its
own seeded generator), its own stop conditions (end-of-turn ids, `stop` strings,
`max_tokens`), its own grammar when it asked for structured output (structured.py masks
the constrained rows of the batch in one call; the others are left as they are), and its
own callback that receives text deltas as they are decoded.
A cancelled row (the client went away) is dropped from the batch and from the cache at
the next step, so nobody keeps paying for it.

Requests that arrive while a batch runs join it at the next step (continuous
batching): they are prefilled on their own, and their KV cache is left-padded to the
running one and stacked onto it (`_merge`).  A finished row leaves at once.  So a short
answer never waits for a long one, and a newcomer never waits for a whole batch.

transformers 5.x also ships continuous batching (`generate_batch`,
`init_continuous_batching`, a paged cache); we keep this explicit loop because it runs
unchanged on an unmerged `PeftModel` (adapter on/off per batch) and on a 4-bit
bitsandbytes model, and because Day 5 reads it.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from loraweek.serving.backend import ServedModel
from loraweek.serving.structured import Constraint, mask_logits


class QueueFull(Exception):
    pass


# Below this temperature a row decodes greedily, which is what sampling tends to as T -> 0.
# Dividing float32 logits by a tinier T (the API allows any T > 0, e.g. 1e-320) overflows to
# inf, softmax turns that into NaN and torch.multinomial raises: a 500 for every request in
# the batch, caused by one client's number.  At 1e-5 a logit of 3e33 would still be finite.
MIN_TEMPERATURE = 1e-5


@dataclass
class Event:
    kind: str                       # "delta", "done" or "error"
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0


@dataclass
class GenRequest:
    model_name: str
    prompt_ids: list[int]
    max_tokens: int
    emit: Callable[[Event], None]   # called from the generation thread; must be thread-safe
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    min_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    grammar: object = None          # an xgrammar CompiledGrammar: decode only what it allows
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)


class _Row:
    """Decoding state of one request inside a batch."""

    def __init__(self, req: GenRequest, device):
        self.req = req
        self.ids: list[int] = []
        self.sent = 0                  # characters already emitted
        self.constraint = Constraint(req.grammar) if req.grammar is not None else None
        self.gen = None
        if req.temperature >= MIN_TEMPERATURE:
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(req.seed if req.seed is not None else int(time.time_ns() % 2**63))

    def pick(self, logits: torch.Tensor, eos: list[int]) -> int:
        if len(self.ids) < self.req.min_tokens:
            held = logits.clone()
            held[eos] = float("-inf")
            if torch.isfinite(held).any():   # a completed grammar allows only end-of-turn: it wins
                logits = held
        if self.gen is None:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / self.req.temperature, dim=-1)
        if self.req.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < self.req.top_p   # smallest set reaching top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=self.gen))


class BatchingEngine:
    def __init__(self, served: ServedModel, max_batch: int = 8, max_queue: int = 64, use_cache: bool = True,
                 on_batch: Callable[[int], None] | None = None, gather_s: float = 0.02):
        self.served, self.max_batch, self.max_queue, self.use_cache = served, max_batch, max_queue, use_cache
        self.gather_s = gather_s
        self.on_batch = on_batch
        self._waiting: deque[GenRequest] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self.running = 0
        self._thread = threading.Thread(target=self._loop, name="loraweek-generation", daemon=True)

    # ---- queue -------------------------------------------------------------------
    def start(self) -> "BatchingEngine":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, req: GenRequest) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull
            self._waiting.append(req)
            self._cond.notify()

    def _take_batch(self) -> list[GenRequest]:
        with self._cond:
            while not self._waiting and not self._stopped:
                self._cond.wait()
            # Clients answered by the same batch come back together, a few ms apart: wait a
            # moment for them instead of starting a batch of one that the rest must queue behind.
            deadline = time.monotonic() + self.gather_s
            while len(self._waiting) < self.max_batch and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stopped:
                return []
            name = self._waiting[0].model_name   # one batch = one model name (adapter on or off)
            batch = [r for r in self._waiting if r.model_name == name and not r.cancelled.is_set()][: self.max_batch]
            for r in list(self._waiting):
                if r in batch or r.cancelled.is_set():
                    self._waiting.remove(r)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if self._stopped:
                return
            if not batch:
                continue
            self.running = len(batch)
            try:
                if self.on_batch:
                    self.on_batch(len(batch))
                with self.served.use(batch[0].model_name):
                    self._generate(batch)
            except Exception as exc:  # a failed batch fails its requests, never the server
                traceback.print_exc()
                for r in batch:
                    r.emit(Event("error", text=f"generation failed: {type(exc).__name__}: {exc}"))
            finally:
                self.running = 0

    # ---- decoding ------------------------------------------------------------------
    def _delta(self, row: _Row, final: bool) -> str:
        """New text since the last emission; holds back an unfinished UTF-8 character and
        anything that could still turn out to be the start of a stop string."""
        text = self.served.tokenizer.decode(row.ids, skip_special_tokens=True)
        hold = 0 if final else max((len(s) - 1 for s in row.req.stop), default=0)
        if not final and text.endswith("\ufffd"):
            hold = max(hold, 1)
        upto = max(row.sent, len(text) - hold)
        out, row.sent = text[row.sent:upto], upto
        return out

    def _stop_hit(self, row: _Row) -> int | None:
        """Character index where the earliest stop string starts, if any."""
        if not row.req.stop:
            return None
        text = self.served.tokenizer.decode(row.ids, skip_special_tokens=True)
        hits = [i for i in (text.find(s) for s in row.req.stop) if i >= 0]
        return min(hits) if hits else None

    def _take_more(self, name: str, room: int) -> list[GenRequest]:
        """Waiting requests for the running model name that can join the batch now."""
        if room <= 0 or not self.use_cache:
            return []
        with self._cond:
            more = [r for r in self._waiting if r.model_name == name and not r.cancelled.is_set()][:room]
            for r in more:
                self._waiting.remove(r)
        return more

    def _left_padded(self, batch: list[GenRequest]):
        pad = self.served.tokenizer.pad_token_id
        pad = pad if pad is not None else self.served.eos_ids[0]
        width = max(len(r.prompt_ids) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):          # left padding: every prompt ends where its answer starts
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
        device = self.served.model.device
        return ids.to(device), mask.to(device)

    def _advance(self, rows: list[_Row], logits: torch.Tensor) -> tuple[list[int], list[int]]:
        """Pick each row's next token, emit its text, finish it if it is done.
        Returns the indices of the rows that go on and their next tokens."""
        tok, eos = self.served.tokenizer, self.served.eos_ids
        logits = mask_logits(logits, [row.constraint for row in rows])
        keep, next_ids = [], []
        for i, row in enumerate(rows):
            if row.req.cancelled.is_set():
                continue
            grammar = row.constraint
            token = eos[0] if grammar and grammar.dead else row.pick(logits[i], eos)
            finish = None
            if token in eos:
                finish = "stop"
            else:
                if grammar:
                    grammar.accept(token)
                row.ids.append(token)
                cut = self._stop_hit(row)
                if cut is not None:
                    text = tok.decode(row.ids, skip_special_tokens=True)[:cut]
                    if len(text) > row.sent:
                        row.req.emit(Event("delta", text=text[row.sent:]))
                    row.sent = len(text)
                    row.req.emit(Event("done", finish_reason="stop", completion_tokens=len(row.ids)))
                    continue
                if len(row.ids) >= row.req.max_tokens:
                    finish = "length"
            delta = self._delta(row, final=finish is not None)
            if delta:
                row.req.emit(Event("delta", text=delta))
            if finish:
                row.req.emit(Event("done", finish_reason=finish, completion_tokens=len(row.ids)))
                continue
            keep.append(i)
            next_ids.append(token)
        return keep, next_ids

    @staticmethod
    def _merge(cache, mask, new_cache, new_mask):
        """Join two batches mid-flight: left-pad the shorter KV cache (and its mask) with
        masked-out zeros to the same length, then stack the rows.  This is the core move of
        continuous batching: a new request starts without waiting for the running batch."""
        old_len, new_len = mask.shape[1], new_mask.shape[1]
        width = max(old_len, new_len)

        def left_pad(t, n, dim):
            if n == 0:
                return t
            shape = list(t.shape)
            shape[dim] = n
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for old_layer, new_layer in zip(cache.layers, new_cache.layers):
            for attr in ("keys", "values"):
                a, b = getattr(old_layer, attr), getattr(new_layer, attr)
                setattr(old_layer, attr, torch.cat([left_pad(a, width - old_len, 2), left_pad(b, width - new_len, 2)]))
        return torch.cat([left_pad(mask, width - old_len, 1), left_pad(new_mask, width - new_len, 1)])

    @torch.no_grad()
    def _generate(self, batch: list[GenRequest]) -> None:
        """Decode `batch`; with the KV cache on, requests for the same name join while it runs."""
        from transformers import DynamicCache

        model, device = self.served.model, self.served.model.device
        name = batch[0].model_name
        rows: list[_Row] = []
        cache = mask = step_ids = step_pos = None
        pending = batch
        while True:
            if pending:    # prefill the newcomers, then merge them into the running batch
                ids, new_mask = self._left_padded(pending)
                new_rows = [_Row(r, device) for r in pending]
                pos = (new_mask.cumsum(-1) - 1).clamp(min=0)
                if not self.use_cache:
                    self._generate_without_cache(new_rows, ids, new_mask)
                    return
                new_cache = DynamicCache(config=model.config)
                out = model(input_ids=ids, attention_mask=new_mask, position_ids=pos, past_key_values=new_cache,
                            use_cache=True)
                keep, nxt = self._advance(new_rows, out.logits[:, -1, :])
                if keep:
                    sel = torch.tensor(keep, device=device)
                    new_cache.batch_select_indices(sel)
                    new_mask, pos = new_mask[sel], pos[sel][:, -1:]
                    new_ids = torch.tensor(nxt, device=device).unsqueeze(1)
                    if rows:
                        mask = self._merge(cache, mask[:, :-1], new_cache, new_mask)  # [:, :-1]: the next token is not cached yet
                        step_ids, step_pos = torch.cat([step_ids, new_ids]), torch.cat([step_pos, pos + 1])
                    else:
                        cache, mask, step_ids, step_pos = new_cache, new_mask, new_ids, pos + 1
                    rows += [new_rows[i] for i in keep]
                    mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
            if not rows:
                return
            out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache,
                        use_cache=True)
            keep, nxt = self._advance(rows, out.logits[:, -1, :])
            if len(keep) < len(rows):
                if not keep:
                    rows = []
                else:
                    sel = torch.tensor(keep, device=device)
                    cache.batch_select_indices(sel)   # finished or cancelled rows leave the cache too
                    mask, step_pos = mask[sel], step_pos[sel]
                    rows = [rows[i] for i in keep]
            if rows:
                step_ids = torch.tensor(nxt, device=device).unsqueeze(1)
                step_pos = step_pos + 1
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
            pending = self._take_more(name, self.max_batch - len(rows))
            if pending and self.on_batch:
                self.on_batch(len(pending))

    def _generate_without_cache(self, rows: list[_Row], ids: torch.Tensor, mask: torch.Tensor) -> None:
        """No KV cache: recompute the whole prefix at every step (the cost the cache saves)."""
        model, device = self.served.model, self.served.model.device
        while rows:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
            keep, nxt = self._advance(rows, out.logits[:, -1, :])
            if not keep:
                return
            sel = torch.tensor(keep, device=device)
            rows = [rows[i] for i in keep]
            new = torch.tensor(nxt, device=device).unsqueeze(1)
            ids, mask = torch.cat([ids[sel], new], dim=1), torch.cat([mask[sel], torch.ones_like(new)], dim=1)
