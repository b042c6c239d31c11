"""loraweek: the helper package of the week-6 LoRA / QLoRA course.

Notebooks teach; this package holds the plumbing they share (the README's "Layout" has the
annotated tree):

- `profiles` (which hardware, which sizes), `hardware`, `cache`, `quiet`;
- `data/` (the dataset, its schema and the answer contract, PII scrubbing, chat format + masking);
- `models/` (loading, the `ci` toy, SmolLM2, the Qwen shape, the course's fine-tuned adapter);
- `lora/` (Day 1: the LoRA layer, quantization, memory arithmetic);
- `training`, `generation`, `memory`, `regularisation` (Days 2 and 4's training runs);
- `methods/` (Day 3), `metrics/` (Day 4), `serving/` (Day 5), `notebook/` (what every notebook shares);
- `course`: the runner behind ``bash run.sh course``.
"""
from loraweek import _moved

__version__ = "0.1.0"

_moved.install()   # old module paths (loraweek.quiz, loraweek.lora_layer, ...) keep working for a release
