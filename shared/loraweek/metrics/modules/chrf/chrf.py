"""chrF (sacrebleu, character 6-grams, beta 2) after NFC normalisation, 0..1, with its signature."""
import evaluate

from loraweek.metrics import text
from loraweek.metrics._module import text_info


class Chrf(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references):
        return text.chrf(predictions, references)
