"""Greedy generation for a list of helpdesk examples, batched with left padding.

Left padding matters for decoder-only models: generation appends to the right
end of each row, so every prompt must end exactly where its answer begins.

A batch runs until its slowest row stops, so one answer that rambles in prose (an untrained base
model's usual answer) keeps the whole batch decoding to `max_new_tokens`.  Such an answer can never
be valid routing JSON once its text starts with anything but `{` (the strict parse in
`loraweek.data.answer.parse_answer` takes exactly one JSON object), so `NotJsonStop` ends that row
after `PROSE_PREVIEW_TOKENS` tokens: every score stays the same, the answer keeps a readable
beginning, and scoring an untrained base costs a fraction of the time (on SmolLM2 on a CPU, it was
the longest step of Day 2).
"""
from __future__ import annotations

import torch
from transformers import StoppingCriteria

from loraweek.data import chat

PROSE_PREVIEW_TOKENS = 24  # tokens kept of an answer that does not start like JSON


class NotJsonStop(StoppingCriteria):
    """Per row: done once `preview` new tokens are generated and the text does not start with `{`."""

    def __init__(self, tokenizer, prompt_len: int, preview: int = PROSE_PREVIEW_TOKENS):
        self.tokenizer, self.prompt_len, self.preview = tokenizer, prompt_len, preview

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len:]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if new.shape[1] < self.preview:
            return done
        if new.shape[1] % self.preview == 0:  # decode every `preview` tokens only: decoding costs
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            self._prose = torch.tensor([not t.lstrip().startswith("{") and t.strip() != "" for t in texts],
                                       device=input_ids.device)
        return done | self._prose


@torch.no_grad()
def generate_answers(model, tokenizer, examples, max_new_tokens: int = 64, batch_size: int = 8,
                     stop_prose: bool = True) -> list[str]:
    """The model's raw answer (up to its end-of-turn token) for each example.  `stop_prose`: end an
    answer that does not start with `{` after PROSE_PREVIEW_TOKENS tokens (see the module docstring)."""
    was_training = model.training
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    answers = []
    # Stop at the end of the assistant's turn as this model's template writes it, or at end-of-text.
    stop_ids = sorted({i for i in (chat.end_of_turn_id(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
                       if i is not None})
    try:
        for i in range(0, len(examples), batch_size):
            convs = [chat.build_messages(ex, with_answer=False) for ex in examples[i:i + batch_size]]
            batch = tokenizer.apply_chat_template(convs, add_generation_prompt=True, padding=True,
                                                  return_tensors="pt", return_dict=True).to(model.device)
            prompt_len = batch["input_ids"].shape[1]
            criteria = [NotJsonStop(tokenizer, prompt_len)] if stop_prose else None
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
                                 stopping_criteria=criteria)
            answers += tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [a.strip() for a in answers]
