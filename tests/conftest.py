"""Tests never reach a model hub; the ci model is built once, up front, and cached.

Two tiers: `bash run.sh test -m "not slow"` is the fast one, for a change to a metric, a regex or
the data (it still needs the ci model, built once into the cache); `bash run.sh test` runs
everything (what CI runs).  A test is slow when its module is in SLOW_MODULES (what each one
runs is said beside it) or when it asks for a fixture in SLOW_FIXTURES.

In parallel (what `bash run.sh test` does: two pytest-xdist workers, `--dist loadscope` with the
scheduler in tests/suite_scheduling.py: whole files per worker except the notebooks, the longest
first) each worker computes with cores / workers threads, so two workers do not fight over the
same cores; the caches the workers share are built under file locks (loraweek.cache).  Serial:
`bash run.sh test -n 0`.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


SLOW_MODULES = {
    # notebooks executed top to bottom (papermill / nbclient)
    "test_notebooks": "every notebook in the ci profile", "test_run_all_blank": "every student notebook, blank",
    "test_quiz": "a notebook executed as the grader would",
    # grading: nbgrader runs of whole classes, the sandbox, the kernel zygote
    "test_grading": "nbgrader on every notebook", "test_grading_bounds": "submissions at their memory/disk limits",
    "test_grading_guard": "guard-mode grading", "test_grading_hostile": "hostile submissions graded",
    "test_grading_isolation": "sandboxed grading", "test_kernel_zygote": "the grader's kernel zygote",
    "test_release": "autograde release of the week", "test_publish": "a release under another organisation",
    "test_selfcheck": "self-checks executed as the grader would",
    # accelerate, the browser, builds of models and folders
    "test_accelerate": "accelerate launch", "test_chat_page": "chromium through playwright",
    "test_tiny_model": "two builds of the ci model", "test_smollm2": "the GGUF conversion",
    "test_smollm2_pipeline": "Day 2's pipeline on SmolLM2", "test_qwen_shape": "a Qwen2.5-0.5B-shaped folder",
    # training runs (beyond a step or two), benchmarks, live servers
    "test_training": "training killed and resumed", "test_methods": "every Day 3 method trained",
    "test_bench_methods": "the methods benchmark", "test_dpo": "DPO runs", "test_regularisation": "Day 4's two runs",
    "test_compression": "Day 5's compressed variants", "test_export": "merge and export",
    "test_serving_fuzz": "a server per case",
}
# the parallel run's scheduler and --record-durations (tests/ is on sys.path: pytest's rootdir-relative
# conftest import puts it there)
pytest_plugins = ("suite_scheduling",)

# the course adapter (trained once per cache) and the live server it feeds
SLOW_FIXTURES = {"adapter", "server"}


def _workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


if _workers() > 1:  # before torch is imported: its thread pool is sized once
    _threads = str(max(1, len(os.sched_getaffinity(0)) // _workers()))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).stem in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session):
    # Build (or find) the ci model before any test, so notebooks and grading subprocesses
    # that start in parallel all find it cached instead of each waiting on the build.
    from loraweek.models.tiny import ensure_ci_model

    ensure_ci_model()


@pytest.fixture(scope="session")
def ci():
    """The ci profile computing in fp32: exact comparisons for the training tests."""
    import torch

    from loraweek.profiles import get_profile

    return get_profile("ci").replace(compute_dtype=torch.float32)


@pytest.fixture(scope="session")
def adapter():
    """The course's fine-tuned adapter on the ci model (trained once, cached)."""
    from loraweek.models.finetuned import course_adapter
    from loraweek.profiles import get_profile

    return course_adapter(get_profile("ci"), progress=False)


@pytest.fixture(scope="session")
def server(adapter):
    """One real `python -m loraweek.serving` for test_serving.py and test_serving_structured.py
    (each start costs 10-20 s on 2 cores); test_serving_fuzz.py starts its own, capped one."""
    from loraweek.serving.process import ServerProcess

    with ServerProcess(["--adapter", str(adapter), "--profile", "ci", "--max-queue", "16",
                        "--rate-limit", "100000"]) as srv:
        yield srv
