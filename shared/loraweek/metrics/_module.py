"""What every course metric module shares: its `evaluate.MetricInfo` (text in, text out)."""
from __future__ import annotations


def text_info(description: str, with_references: bool = True):
    import datasets
    import evaluate

    features = {"predictions": datasets.Value("string")}
    if with_references:
        features["references"] = datasets.Value("string")
    return evaluate.MetricInfo(
        description=description, citation="loraweek course, week 6, Day 4",
        inputs_description="predictions: the model's answers (str); references: the expected answers (str)",
        features=datasets.Features(features))
