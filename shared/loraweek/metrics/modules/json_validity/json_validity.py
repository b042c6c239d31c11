"""Share of answers that are valid routing JSON (loraweek.data.answer.parse_answer)."""
import evaluate

from loraweek.metrics import classification
from loraweek.metrics._module import text_info


class JsonValidity(evaluate.Metric):
    def _info(self):
        return text_info(__doc__, with_references=False)

    def _compute(self, predictions):
        return classification.json_validity(predictions)
