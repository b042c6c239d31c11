"""Tests never reach a model hub; the ci model is built once, up front, and cached."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def pytest_sessionstart(session):
    # Build (or find) the ci model before any test, so notebooks and grading subprocesses
    # that start in parallel all find it cached instead of each waiting on the build.
    from loraweek.tiny_model import ensure_ci_model

    ensure_ci_model()
