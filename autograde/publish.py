"""Where the course is published: ONE GitHub repository, named once in pyproject.toml::

    [tool.loraweek]
    repo = "ORG/NAME"

The Colab badges and the setup cells of the notebooks, and the links of README.md and
CONTRIBUTING.md, must name a URL (a badge cannot be computed), so they are written by
`python -m autograde release --repo ORG/NAME`, which rewrites every one of them from the old
repository to the new one, updates pyproject.toml and regenerates weeks/.  `release` (check)
fails when a published file names another repository (`problems`).
"""
from __future__ import annotations

import re
from pathlib import Path

from . import ASSIGNMENT, REPO_ROOT

PYPROJECT = "pyproject.toml"
TABLE = "tool.loraweek"
# Files that name the repository (besides pyproject.toml); weeks/ is generated from solutions/.
PUBLISHED = ("README.md", "CONTRIBUTING.md", f"solutions/{ASSIGNMENT}/*.ipynb",
             f"tests/fixtures/{ASSIGNMENT}/*.ipynb")
# The folder the setup cell clones into, whatever the repository is called.
CLONE_DIR = "week06-lora"

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# A GitHub repository in a URL: github.com/<owner>/<name> or Colab's colab.research.google.com/github/<owner>/<name>
# (a sentence's final dot and a .git suffix are not part of the name).
REFERENCE = re.compile(r"(?P<prefix>(?<![\w.-])(?:www\.)?github\.com/|colab\.research\.google\.com/github/)"
                       r"(?P<owner>[A-Za-z0-9-]+)/(?P<name>\.?[A-Za-z0-9_-]+(?:\.(?!git\b)[A-Za-z0-9_-]+)*)")


def validate_repo(value: str) -> str:
    """ORG/NAME as GitHub allows it, or ValueError saying what is wrong."""
    value = str(value).strip()
    if "://" in value or value.startswith(("github.com", "www.")):
        raise ValueError(f"{value!r}: give the repository as ORG/NAME (e.g. my-org/week06-lora), not a URL")
    if value.count("/") != 1:
        raise ValueError(f"{value!r}: expected ORG/NAME, one organisation (or user) and one repository name")
    owner, name = value.split("/")
    if not _OWNER.fullmatch(owner):
        raise ValueError(f"{value!r}: the organisation {owner!r} must be 1-39 letters, digits or single hyphens, "
                         "not starting or ending with a hyphen (GitHub's rule for user and organisation names)")
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{value!r}: the repository name {name!r} must be 1-100 letters, digits, '.', '-' or '_' "
                         "(and not '.' or '..')")
    if name.lower().endswith(".git"):
        raise ValueError(f"{value!r}: leave out the .git suffix ({owner}/{name[:-4]})")
    if references(github_url(value)) != [value]:
        raise ValueError(f"{value!r}: the repository name {name!r} must not end in '.' or hold '..' or '.git.' "
                         "(the course's URLs could not be rewritten from it)")
    return value


def _table_span(text: str) -> tuple[int, int]:
    m = re.search(r"^\[" + re.escape(TABLE) + r"\]\s*$", text, re.M)
    if not m:
        raise ValueError(f"{PYPROJECT} has no [{TABLE}] table with repo = \"ORG/NAME\"")
    nxt = re.search(r"^\[", text[m.end():], re.M)
    return m.end(), m.end() + nxt.start() if nxt else len(text)


_REPO_LINE = re.compile(r'^(repo\s*=\s*)"([^"]*)"', re.M)


def configured_repo(root: Path = REPO_ROOT) -> str:
    """The repository named in pyproject.toml's [tool.loraweek] table."""
    text = (Path(root) / PYPROJECT).read_text(encoding="utf-8")
    start, end = _table_span(text)
    m = _REPO_LINE.search(text, start, end)
    if not m:
        raise ValueError(f"{PYPROJECT}: [{TABLE}] has no repo = \"ORG/NAME\" line")
    return validate_repo(m.group(2))


def github_url(repo: str) -> str:
    return f"https://github.com/{repo}"


def colab_url(repo: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{repo}/blob/main/weeks/{ASSIGNMENT}/{notebook}"


def setup_cell(repo: str) -> str:
    """The setup cell every notebook starts with (CONTRIBUTING.md shows it)."""
    return f'''# Setup: on Colab, fetch the course and install its helper package (about 1 minute);
# anywhere else (your laptop, CI, grading) this does nothing.
import os, subprocess, sys
COURSE_REPO = "{github_url(repo)}"   # a fork or a moved course: its URL here
if "google.colab" in sys.modules and not os.path.isdir("{CLONE_DIR}"):
    _clone = subprocess.run(["git", "clone", "--depth=1", COURSE_REPO, "{CLONE_DIR}"], capture_output=True,
                            text=True, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    if _clone.returncode != 0:
        raise RuntimeError(f"git clone {{COURSE_REPO}} failed: {{(_clone.stderr.strip().splitlines() or ['?'])[-1]}}\\n"
                           "If that repository is private, renamed or moved, set COURSE_REPO above to one you "
                           "can read (your fork: https://github.com/<you>/<repo>) and run this cell again.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{CLONE_DIR}"], check=True)
    sys.path.insert(0, os.path.abspath("{CLONE_DIR}/shared"))'''


def published_files(root: Path = REPO_ROOT) -> list[Path]:
    root = Path(root)
    out = []
    for pattern in PUBLISHED:
        out += sorted(root.glob(pattern))
    return out


def references(text: str) -> list[str]:
    """Every <owner>/<name> a GitHub or Colab URL in `text` names."""
    return [f"{m['owner']}/{m['name']}" for m in REFERENCE.finditer(text)]


def rewrite(text: str, old: str, new: str) -> str:
    """`text` with every URL of repository `old` pointing at `new` (other repositories untouched)."""
    def swap(m):
        same = f"{m['owner']}/{m['name']}".lower() == old.lower()
        return f"{m['prefix']}{new}" if same else m.group(0)
    return REFERENCE.sub(swap, text)


def set_repo(new: str, root: Path = REPO_ROOT, also=()) -> list[Path]:
    """Point every published file (and the files `also`) and pyproject.toml at `new`; return the
    files changed.  (weeks/ is regenerated by the caller.)"""
    new = validate_repo(new)
    root = Path(root)
    old = configured_repo(root)
    changed = []
    for path in dict.fromkeys([*published_files(root), *map(Path, also)]):
        text = path.read_text(encoding="utf-8")
        updated = rewrite(text, old, new)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            changed.append(path)
    pyproject = root / PYPROJECT
    text = pyproject.read_text(encoding="utf-8")
    start, end = _table_span(text)
    updated = text[:start] + _REPO_LINE.sub(lambda m: f'{m.group(1)}"{new}"', text[start:end], count=1) + text[end:]
    if updated != text:
        pyproject.write_text(updated, encoding="utf-8")
        changed.append(pyproject)
    return changed


def problems(root: Path = REPO_ROOT, solutions: Path | None = None) -> list[str]:
    """What in the published files disagrees with pyproject.toml's repository: a URL of another
    repository, a solution notebook without its own Colab badge or without the setup cell."""
    import nbformat

    root = Path(root)
    try:
        repo = configured_repo(root)
    except ValueError as err:
        return [str(err)]
    out = []
    for path in published_files(root):
        others = sorted({r for r in references(path.read_text(encoding="utf-8")) if r.lower() != repo.lower()})
        if others:
            out.append(f"{path.relative_to(root)} names {', '.join(others)}, not {repo} ({PYPROJECT} [{TABLE}]): "
                       f"run `python -m autograde release --repo {repo}`, or --repo the one it should be")
    solutions = Path(solutions) if solutions else root / "solutions" / ASSIGNMENT
    for path in sorted(solutions.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        if colab_url(repo, path.name) not in text:
            out.append(f"{path.name}: no Colab badge for {colab_url(repo, path.name)}")
        if not any(c.cell_type == "code" and c.source == setup_cell(repo) for c in nb.cells):
            out.append(f"{path.name}: no setup cell equal to autograde.publish.setup_cell({repo!r}) "
                       "(see CONTRIBUTING.md)")
    return out
