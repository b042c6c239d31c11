"""Perplexity of the reference answers: how surprised is the model by the right answer?

exp(mean negative log-likelihood per answer token), with the prompt masked out exactly
as in training (`loraweek.data.chat`).  evaluate's own `perplexity` module cannot do this:
it loads a model by name itself, so it cannot score an in-memory PeftModel, and it scores
whole texts rather than the answer given the prompt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from loraweek.data import chat
from loraweek.training import label_positions


@dataclass
class PerplexityResult:
    perplexity: float
    nll: np.ndarray        # summed negative log-likelihood of each example's answer tokens
    tokens: np.ndarray     # number of answer tokens of each example
    dropped_too_long: int

    def on(self, idx) -> float:
        """Perplexity of a subset (for bootstrap): token-weighted, like the whole."""
        return math.exp(self.nll[idx].sum() / self.tokens[idx].sum())


@torch.no_grad()
def reference_perplexity(model, tokenizer, examples, max_len: int, batch_size: int = 16) -> PerplexityResult:
    if len(examples) == 0:
        raise ValueError("examples is empty: no reference answers to score")
    features, dropped = chat.tokenize_examples(tokenizer, list(examples), max_len)
    if not features:
        raise ValueError(f"every example is longer than max_len={max_len} tokens")
    was_training = model.training
    model.eval()
    nll, tokens = [], []
    pad = tokenizer.pad_token_id
    try:
        for i in range(0, len(features), batch_size):
            batch = features[i:i + batch_size]
            width = max(len(f["input_ids"]) for f in batch)
            ids = torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in batch])
            mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in batch])
            labels = torch.tensor([f["labels"] + [chat.IGNORE_INDEX] * (width - len(f["labels"])) for f in batch])
            inputs = dict(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
            keep = label_positions(model, {**inputs, "labels": labels})
            if keep is None:  # a model without `logits_to_keep`: every position, the prompt's too
                logits = model(**inputs).logits.float()
                # shift: the logits at t predict the label at t + 1
                loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:].to(model.device),
                                                         ignore_index=chat.IGNORE_INDEX, reduction="none")
                nll += loss.sum(dim=1).tolist()
            else:  # only the positions whose next token is an answer token (as in training): the
                # prompt is most of each row, and its projection onto the vocabulary is wasted
                logits = model(**inputs, logits_to_keep=keep.to(model.device)).logits.float()
                logits = logits.reshape(-1, logits.shape[-1])          # [kept positions, vocab], row by row
                loss = torch.nn.functional.cross_entropy(logits, labels[:, 1:][keep[:, :-1]].to(model.device),
                                                         reduction="none")
                rows = keep.nonzero()[:, 0]
                nll += torch.zeros(len(batch), dtype=torch.float64).index_add_(0, rows, loss.cpu().double()).tolist()
            tokens += (labels[:, 1:] != chat.IGNORE_INDEX).sum(dim=1).tolist()
    finally:
        model.train(was_training)
    nll, tokens = np.array(nll), np.array(tokens)
    return PerplexityResult(math.exp(nll.sum() / tokens.sum()), nll, tokens, dropped)
