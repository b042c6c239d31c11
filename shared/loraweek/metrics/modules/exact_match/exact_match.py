"""Exact match after NFC normalisation and trimming surrounding spaces."""
import evaluate

from loraweek.metrics import text
from loraweek.metrics._module import text_info


class ExactMatch(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references):
        return text.exact_match(predictions, references)
