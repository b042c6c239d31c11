"""Tests never reach a model hub; the ci model is built once, up front, and cached."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def pytest_sessionstart(session):
    # Build (or find) the ci model before any test, so notebooks and grading subprocesses
    # that start in parallel all find it cached instead of each waiting on the build.
    from loraweek.tiny_model import ensure_ci_model

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
    from loraweek.finetuned import course_adapter
    from loraweek.profiles import get_profile

    return course_adapter(get_profile("ci"), progress=False)


@pytest.fixture(scope="session")
def server(adapter):
    """One real `python -m loraweek.serve` for test_serving.py and test_serving_structured.py
    (each start costs 10-20 s on 2 cores); test_serving_fuzz.py starts its own, capped one."""
    from loraweek.serving.process import ServerProcess

    with ServerProcess(["--adapter", str(adapter), "--profile", "ci", "--max-queue", "16",
                        "--rate-limit", "100000"]) as srv:
        yield srv
