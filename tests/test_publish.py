"""One publish point: the GitHub repository is named once, in pyproject.toml ([tool.loraweek] repo);
every other file that names it (badges, setup cells, README/CONTRIBUTING links) is written by
`python -m autograde release --repo ORG/NAME`, and `release` fails when one names another."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import publish  # noqa: E402

# GitHub repositories other than the course's that a tracked file may link to (none today).
THIRD_PARTY: set[str] = set()
# Files whose repository URLs are examples, never published: this test's own.
EXEMPT = {"tests/test_publish.py"}
SKIP_SUFFIXES = (".png", ".jpg", ".gif", ".gguf", ".safetensors", ".bin", ".zip", ".db")


def tracked_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):   # not a git checkout: every file but the builds
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                 and not {".git", ".venv", "build", "node_modules", "__pycache__"} & set(p.relative_to(root).parts)]
    return [root / n for n in names if not n.endswith(SKIP_SUFFIXES) and (root / n).is_file()]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def repo_mentions(root: Path) -> dict[str, list[str]]:
    """file -> what is wrong with the repositories it names (empty: nothing)."""
    repo = publish.configured_repo(root)
    published = {p.resolve() for p in publish.published_files(root)}
    generated = {p.resolve() for p in (root / "weeks").rglob("*.ipynb")}
    wrong = {}
    for path in tracked_files(root):
        rel = str(path.relative_to(root))
        text = _text(path)
        if text is None or rel in EXEMPT:
            continue
        refs = publish.references(text)
        issues = [f"names {r}" for r in sorted(set(refs)) if r.lower() != repo.lower() and r not in THIRD_PARTY]
        ours = sum(r.lower() == repo.lower() for r in refs)
        if ours and path.resolve() not in published | generated:
            issues.append(f"names {repo} in a URL but is not one of the files release --repo rewrites "
                          f"(autograde/publish.py PUBLISHED)")
        bare = text.lower().count(repo.lower()) - ours - (rel == publish.PYPROJECT)
        if bare > 0:
            issues.append(f"names {repo} {bare} time(s) outside a URL (release --repo would not rewrite it)")
        if issues:
            wrong[rel] = issues
    return wrong


def test_pyproject_names_the_one_repo():
    repo = publish.configured_repo(ROOT)
    assert publish.validate_repo(repo) == repo
    assert publish.published_files(ROOT), "no published files found"


def test_no_tracked_file_names_another_repo_or_hard_codes_this_one():
    assert repo_mentions(ROOT) == {}


def test_every_published_file_and_student_notebook_names_the_repo():
    repo = publish.configured_repo(ROOT)
    for path in [*publish.published_files(ROOT), *(ROOT / "weeks" / "week06").glob("*.ipynb")]:
        assert repo in publish.references(path.read_text(encoding="utf-8")), path
    assert publish.problems(ROOT) == []


@pytest.mark.parametrize("value", ["my-org/week06-lora", "a/b", "A1-b2/x.y_z-1", "o" * 39 + "/" + "n" * 100,
                                   "org/.github"])
def test_valid_repos(value):
    assert publish.validate_repo(value) == value


@pytest.mark.parametrize("value,why", [
    ("week06-lora", "expected ORG/NAME"), ("a/b/c", "expected ORG/NAME"), ("/repo", "organisation ''"),
    ("-org/repo", "not starting or ending with a hyphen"), ("org-/repo", "hyphen"), ("o--rg/repo", "single hyphens"),
    ("o" * 40 + "/repo", "1-39"), ("my_org/repo", "organisation"), ("org/", "repository name ''"),
    ("org/re po", "repository name"), ("org/" + "n" * 101, "1-100"), ("org/..", "not '.' or '..'"),
    ("org/repo.git", "leave out the .git suffix"), ("https://github.com/org/repo", "not a URL"),
    ("github.com/org/repo", "not a URL"), ("org/rép", "repository name")])
def test_invalid_repos_say_why(value, why):
    with pytest.raises(ValueError, match=None) as err:
        publish.validate_repo(value)
    assert why in str(err.value), err.value


def test_cli_rejects_a_bad_repo_before_touching_anything(capsys):
    from autograde.__main__ import main

    before = (ROOT / "pyproject.toml").read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["release", "--repo", "my_org/week06-lora"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--repo" in err and "my_org" in err and "single hyphens" in err, err
    assert (ROOT / "pyproject.toml").read_bytes() == before


def test_rewrite_touches_only_the_old_repo():
    text = ("[badge](https://colab.research.google.com/github/Old-Org/old/blob/main/weeks/week06/d.ipynb) "
            'COURSE_REPO = "https://github.com/old-org/old" see https://github.com/old-org/old. '
            "https://github.com/old-org/old.git https://github.com/old-org/older https://github.com/huggingface/peft")
    out = publish.rewrite(text, "old-org/old", "new-org/new.name")
    assert publish.references(out) == ["new-org/new.name"] * 4 + ["old-org/older", "huggingface/peft"]
    assert "see https://github.com/new-org/new.name. " in out and "new.name.git " in out


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_setup_cell_says_what_to_do_when_the_clone_fails(tmp_path, monkeypatch):
    repo = publish.configured_repo(ROOT)
    missing = (tmp_path / "no-such-repo").as_uri()
    source = publish.setup_cell(repo).replace(publish.github_url(repo), missing)
    assert source != publish.setup_cell(repo)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    with pytest.raises(RuntimeError) as err:
        exec(compile(source, "setup-cell", "exec"), {})
    message = str(err.value)
    assert f"git clone {missing} failed" in message, message
    assert "private, renamed or moved" in message and "set COURSE_REPO" in message, message
    assert not (tmp_path / publish.CLONE_DIR).exists()


def _release(root: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(root), str(root / "shared")]))
    return subprocess.run([sys.executable, "-m", "autograde", "release", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_release_repo_rewrites_every_file_of_a_copy(tmp_path):
    """In a copy of the tracked files: --repo rewrites every badge, setup cell and link, the copy
    then passes `release` and names no other repository, and --repo back restores every byte."""
    copy = tmp_path / "repo"
    originals = {}
    for path in tracked_files(ROOT):
        rel = path.relative_to(ROOT)
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy / rel)
        originals[rel] = path.read_bytes()
    old, new = publish.configured_repo(ROOT), "another-org/week06.lora_fork"

    r = _release(copy, "--repo", new)
    assert r.returncode == 0, r.stdout + r.stderr
    assert publish.configured_repo(copy) == new
    assert repo_mentions(copy) == {}
    for path in [*publish.published_files(copy), *(copy / "weeks" / "week06").glob("*.ipynb")]:
        text = path.read_text(encoding="utf-8")
        assert new in publish.references(text) and old not in text, path
    for nb in (copy / "solutions" / "week06").glob("*.ipynb"):
        assert publish.colab_url(new, nb.name) in nb.read_text(encoding="utf-8")
    changed = {p.relative_to(copy) for p in tracked_files(copy) if p.read_bytes() != originals[p.relative_to(copy)]}
    assert changed == {p.relative_to(copy) for p in publish.published_files(copy)} | {
        Path(publish.PYPROJECT)} | {p.relative_to(copy) for p in (copy / "weeks" / "week06").glob("*.ipynb")}
    r = _release(copy)
    assert r.returncode == 0, r.stdout + r.stderr

    # a hand-made badge of another repository fails the check (release prints these), saying how to fix it
    readme = copy / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace(new, "someone/else", 1), encoding="utf-8")
    found = publish.problems(copy)
    assert len(found) == 1 and "README.md names someone/else" in found[0] and f"--repo {new}" in found[0], found
    readme.write_text(readme.read_text(encoding="utf-8").replace("someone/else", new), encoding="utf-8")

    r = _release(copy, "--repo", old)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [p for p in originals if (copy / p).read_bytes() != originals[p]] == []
