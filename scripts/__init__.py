"""The course's benchmarks and tools, apart from the library (`loraweek`): run each from the
repository root as ``python -m scripts.NAME --help``, or installed as ``loraweek-NAME`` (``bench_``
becomes ``bench-``, see pyproject.toml's ``[project.scripts]``); what they measured is in README.md.
bench_batching: padded vs bucketed vs padding-free batches, one child process per variant.
bench_ci_model: does the ci model learn the task (build, Day 2 training, base vs fine-tuned scores).
bench_eval: scoring 400 answers, the course report vs the evaluate modules vs a naive bootstrap.
bench_grading: the grading pipeline's time per week and per class (imports ``autograde``: repository root only, no entry point).
bench_laptop: the laptop profile's levers on SmolLM2-135M-Instruct, one child process per variant.
bench_methods: Day 3's comparison table (or ``--memory-only``: does each method fit a T4), one child process per method.
bench_serving: the server's throughput and latency for 1 / 4 / 8 concurrent clients.
bench_structured: valid JSON and tokens/s with and without constrained decoding.
make_qwen_folder: a Qwen2.5-0.5B-shaped model folder, built offline.
verify_course: every notebook on the Qwen shape under a T4's limits, measured.
Helpers: ``_variants`` (each variant in its own child process), ``_shapes`` (the Qwen2.5-0.5B-shaped model with the ci tokenizer).
"""
