"""Argument checks shared by the metric functions: every error names the argument."""
from __future__ import annotations


def check_pair(predictions, references, pred_name: str = "predictions", ref_name: str = "references"):
    """Two equally long, non-empty sequences, else a ValueError naming the arguments."""
    for name, seq in ((pred_name, predictions), (ref_name, references)):
        if isinstance(seq, str) or not hasattr(seq, "__len__"):
            raise TypeError(f"{name} must be a list, got {type(seq).__name__}")
    if len(predictions) == 0:
        raise ValueError(f"{pred_name} is empty: nothing to score")
    if len(predictions) != len(references):
        raise ValueError(f"{pred_name} has {len(predictions)} items but {ref_name} has {len(references)}; "
                         "they must be aligned one to one")
    return list(predictions), list(references)


def as_text(value, name: str) -> str:
    """A model answer as text: None (nothing generated) becomes "", which simply scores 0."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name} must contain strings, got {type(value).__name__}: {value!r}")
    return value
