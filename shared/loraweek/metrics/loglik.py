"""Multiple choice scored by log-likelihood, the way lm-evaluation-harness does it.

For each choice the model reads `context + delimiter + choice` and we add up the
log-probabilities of the *choice's* tokens only (the context is masked out).  The
highest sum wins (`acc`).  Long choices collect more negative log-probabilities, so
`acc_norm` divides by the choice's length first.  Which length matters for
Vietnamese: "hỗ trợ" is 6 characters but 10 UTF-8 bytes.  lm-eval's `acc_norm` uses
characters (its `acc_bytes` uses bytes); we follow it and say so: NORMALISATION.

Tokenization follows lm-eval's `_encode_pair`: trailing spaces move from the context to
the choice, and the pair is encoded *as a whole* and split after the context's tokens, so
the choice gets the tokens it has in running text (" Paris", not "Paris").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NORMALISATIONS = ("chars", "bytes", "tokens")
NORMALISATION = "chars"  # the course's acc_norm: log-likelihood / number of characters of the choice


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) with lm-eval's rules (see the module docstring)."""
    if not context:
        raise ValueError("context must be non-empty: the first choice token needs something to be predicted from")
    n_spaces = len(context) - len(context.rstrip(" "))
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx):]


@torch.no_grad()
def choice_logprobs(model, tokenizer, context: str, choices, delimiter: str = " ") -> list[tuple[float, int]]:
    """(sum of log p(choice tokens | context), number of choice tokens) for each choice.

    Every choice follows the same context tokens, so the context is read once and its keys and
    values (transformers' cache) are repeated for each choice: the same numbers as one forward
    pass over each `context + choice` (tests/test_metrics.py checks it), at about 1/len(choices)
    of the cost when the context is long -- Day 4's helpdesk items are the router's whole chat
    prompt followed by an intent of a few tokens."""
    if isinstance(choices, str) or len(choices) == 0:
        raise ValueError(f"choices must be a non-empty list of strings, got {choices!r}")
    pairs = [encode_pair(tokenizer, context, delimiter + c) for c in choices]
    for c, (_, cont) in zip(choices, pairs):
        if not cont:
            raise ValueError(f"choice {c!r} encodes to no tokens after the context")
    ctx = pairs[0][0]  # the same for every choice: encode_pair splits after the context's own tokens
    read = model(input_ids=torch.tensor([ctx], device=model.device), use_cache=True)
    first = torch.log_softmax(read.logits[0, -1].float(), dim=-1)  # predicts each choice's first token
    conts = [cont for _, cont in pairs]
    width = max(map(len, conts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    cache = read.past_key_values
    cache.batch_repeat_interleave(len(conts))
    # right padding: positions of real tokens stay where they would be unbatched
    ids = torch.tensor([c + [pad] * (width - len(c)) for c in conts], device=model.device)
    mask = torch.tensor([[1] * (len(ctx) + len(c)) + [0] * (width - len(c)) for c in conts], device=model.device)
    logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask, past_key_values=cache,
                                       use_cache=True).logits.float(), dim=-1)
    out = []
    for i, cont in enumerate(conts):
        # the logits at position t predict token t + 1: the context's last one predicts cont[0]
        rest = logprobs[i, torch.arange(len(cont) - 1, device=model.device), torch.tensor(cont[1:], dtype=torch.long, device=model.device)]
        out.append((float(first[cont[0]] + rest.sum()), len(cont)))
    return out


def choice_length(choice: str, normalisation: str, n_tokens: int) -> int:
    if normalisation == "chars":
        return len(choice)
    if normalisation == "bytes":
        return len(choice.encode("utf-8"))
    if normalisation == "tokens":
        return n_tokens
    raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")


@dataclass
class MCResult:
    acc: float
    acc_norm: float
    normalisation: str
    n: int
    correct: list[bool]        # per item, raw log-likelihood
    correct_norm: list[bool]   # per item, length-normalised

    def as_dict(self):
        return {"acc": self.acc, "acc_norm": self.acc_norm, "normalisation": self.normalisation, "n": self.n}


def score_multiple_choice(model, tokenizer, items, normalisation: str = NORMALISATION,
                          delimiter: str = " ", progress: bool = False) -> MCResult:
    """items: dicts with `context`, `choices` and `answer` (index of the right choice)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if len(items) == 0:
        raise ValueError("items is empty: nothing to score")
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    correct, correct_norm = [], []
    try:
        for k, item in enumerate(tqdm(items, desc="multiple choice", disable=not progress)):
            for key in ("context", "choices", "answer"):
                if key not in item:
                    raise ValueError(f"items[{k}] has no field {key!r}")
            if not 0 <= item["answer"] < len(item["choices"]):
                raise ValueError(f"items[{k}]['answer'] = {item['answer']} is not an index into its "
                                 f"{len(item['choices'])} choices")
            lls = choice_logprobs(model, tokenizer, item["context"], item["choices"], delimiter)
            raw = [ll for ll, _ in lls]
            norm = [ll / choice_length(c, normalisation, n) for (ll, n), c in zip(lls, item["choices"])]
            correct.append(max(range(len(raw)), key=raw.__getitem__) == item["answer"])
            correct_norm.append(max(range(len(norm)), key=norm.__getitem__) == item["answer"])
    finally:
        model.train(was_training)
    n = len(items)
    return MCResult(sum(correct) / n, sum(correct_norm) / n, normalisation, n, correct, correct_norm)
