"""Greedy generation for a list of helpdesk examples, batched with left padding.

Left padding matters for decoder-only models: generation appends to the right
end of each row, so every prompt must end exactly where its answer begins.
"""
from __future__ import annotations

import torch

from loraweek.data import chat


@torch.no_grad()
def generate_answers(model, tokenizer, examples, max_new_tokens: int = 64, batch_size: int = 8) -> list[str]:
    """The model's raw answer (up to its end-of-turn token) for each example."""
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
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [a.strip() for a in answers]
