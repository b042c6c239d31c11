"""Accuracy of intent, priority and language; references are target JSON strings; invalid answers are wrong."""
import evaluate

from loraweek.metrics import classification
from loraweek.metrics._module import text_info


class FieldAccuracy(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references):
        return classification.field_accuracy(predictions, references)
