"""Corpus BLEU through sacrebleu (tokenize 13a by default, or intl), 0..1, with its signature."""
import evaluate

from loraweek.metrics import text
from loraweek.metrics._module import text_info


class Bleu(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references, tokenize="13a"):
        return text.bleu(predictions, references, tokenize=tokenize)
