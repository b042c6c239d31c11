"""ROUGE-L F (mean over pairs) with a Unicode-aware tokenizer: NFC, lower-case, \\w+ words, no stemming."""
import evaluate

from loraweek.metrics import text
from loraweek.metrics._module import text_info


class RougeL(evaluate.Metric):
    def _info(self):
        return text_info(__doc__)

    def _compute(self, predictions, references):
        return text.rouge_l(predictions, references)
