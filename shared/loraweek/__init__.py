"""loraweek: the helper package of the week-6 LoRA / QLoRA course.

Notebooks teach; this package holds the plumbing they share:
profiles (which hardware, which sizes), data (load, scrub, format, mask),
the tiny `ci` model, model loading in 4-bit, training and reporting.
"""

__version__ = "0.1.0"
