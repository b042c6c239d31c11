"""Micro/macro/weighted F1 over the ten intents; an invalid answer is its own wrong class."""
import evaluate

from loraweek.metrics import classification
from loraweek.metrics._module import text_info


class IntentF1(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references):
        return classification.intent_f1(predictions, references)
