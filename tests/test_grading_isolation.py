"""Isolation that holds: hostile submissions graded BEFORE an innocent perfect student, in ONE
`python -m autograde all --jobs 1` run, on the fixture notebook (tests/fixtures/week06).

One hostile notebook per attack class of issue 8: it rewrites a module of the course package,
edits the cached ci model, plants a .pth file in the venv's site-packages, plants an IPython
start-up file in the (real) home folder, and reads the instructor's source notebooks from
its working folder.  Every payload would sabotage the grading of the students after it.
Checked: the innocent student still gets full marks, every hostile row is flagged with a reason
naming what it tried, nothing planted is left anywhere, and no feedback file holds a line of a
hidden test (nor, for the reader, of a solution).

The run uses the bubblewrap sandbox; where it cannot start the module is skipped, because the
fallback guard restores files *after* the fact and this checkout is shared (the guard mode is
tested on private copies in test_grading_guard.py).
"""
import copy
import csv
import html
import json
import os
import pwd
import re
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402
from autograde.isolation import SANDBOX  # noqa: E402
from autograde.isolation.bwrap import probe  # noqa: E402
from autograde.leaks import _blocks, HIDDEN  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "week06"
NB = "day0_fixture"
MARK = "LW-PLANTED-ISSUE8"
pytestmark = pytest.mark.skipif(not probe()[0], reason=f"no sandbox here: {probe()[1]}")

# Each payload runs in the first exercise's answer cell of a blank notebook (so that the hostile
# student's own cells hold no solution line), then answers that exercise.
ANSWER = "def lora_param_count(d_in, d_out, r):\n    return r * (d_in + d_out)\n"
ATTACKS = {
    # the next student's hidden tests import loraweek.lora.layer as their reference
    "h1-package": f'''import loraweek.lora.layer as _m, pathlib
_p = pathlib.Path(_m.__file__)
_p.write_text(_p.read_text() + "\\ndef lora_param_formula(*a, **k):  # {MARK}\\n    return -1\\n")
''',
    # every later notebook loads this model
    "h2-cache": f'''from loraweek.models.tiny import ensure_ci_model
(ensure_ci_model() / "config.json").write_text('{{"{MARK}": true}}')
''',
    # run by every later Python process that uses the venv
    "h3-pth": f'''import site, pathlib
pathlib.Path(site.getsitepackages()[0], "zz_lw_planted.pth").write_text(
    "import os; os.environ['LW_PLANTED'] = '{MARK}'\\n")
''',
    # run by every later IPython kernel of this user: the real home, not $HOME
    "h4-startup": f'''import pwd, os, pathlib
_d = pathlib.Path(pwd.getpwuid(os.getuid()).pw_dir, ".ipython/profile_default/startup")
_d.mkdir(parents=True, exist_ok=True)
(_d / "00-lw-planted.py").write_text(
    "import loraweek.lora.layer as _m; _m.lora_param_formula = lambda *a, **k: -1  # {MARK}\\n")
''',
    # the instructor's notebooks, printed: three folders up from nbgrader's working folder, and
    # at the course's own path (a student can learn it, e.g. from a traceback)
    "h5-reader": '''import glob, pathlib
for _f in (glob.glob("../../../source/week06/*.ipynb") + glob.glob("../../../../source/week06/*.ipynb")
           + glob.glob("COURSE/source/week06/*.ipynb") + ["COURSE/source/week06/NB.ipynb"]):
    try:
        print(pathlib.Path(_f).read_text())
    except OSError:
        pass
''',
}
# what each row's reason must name
REASON = {"h1-package": "lora/layer.py", "h2-cache": "config.json", "h3-pth": "zz_lw_planted.pth",
          "h4-startup": "00-lw-planted.py", "h5-reader": "tried to read"}


def _cache():
    """The session's model cache (conftest builds the ci model there once)."""
    from loraweek.cache import cache_root

    return cache_root()


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", LORAWEEK_CACHE=str(_cache()))


def _with_answer(nb, code):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "ex_lora_params":
            c.source = code + ANSWER
    return nb


def _text(html_file: Path) -> str:
    """What a reader of the feedback page sees: tags (syntax highlighting) removed, unescaped."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_file.read_text()))


def _planted() -> list[str]:
    """Every place a payload could have survived."""
    import loraweek
    from loraweek.models.tiny import ensure_ci_model

    os.environ["LORAWEEK_CACHE"] = _env()["LORAWEEK_CACHE"]
    found = []
    for p in Path(loraweek.__file__).parent.rglob("*.py"):
        if MARK in p.read_text(errors="replace"):
            found.append(str(p))
    cfg = ensure_ci_model(verbose=False) / "config.json"
    if MARK in cfg.read_text():
        found.append(str(cfg))
    for d in site.getsitepackages():
        if (Path(d) / "zz_lw_planted.pth").exists():
            found.append(str(Path(d) / "zz_lw_planted.pth"))
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    if (home / ".ipython/profile_default/startup/00-lw-planted.py").exists():
        found.append("~/.ipython/profile_default/startup/00-lw-planted.py")
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from autograde.course import prepare_course

    assert not _planted(), "left over from an earlier run"
    course = prepare_course(tmp_path_factory.mktemp("isolation") / "course", FIXTURES)
    src, rel = course / "source/week06" / f"{NB}.ipynb", course / "release/week06" / f"{NB}.ipynb"
    perfect, blank = synth.perfect(src, rel), synth.blank(rel)
    folder = tmp_path_factory.mktemp("subs")
    for sid, code in ATTACKS.items():   # h* sorts before zz: graded first with --jobs 1
        code = code.replace("COURSE", str(course)).replace("NB", NB)
        nbformat.write(_with_answer(blank, code), str(folder / f"{sid}__{NB}.ipynb"))
    nbformat.write(perfect, str(folder / f"zz-innocent__{NB}.ipynb"))
    cmd = [sys.executable, "-m", "autograde", "all", "--course-dir", str(course), "--solutions", str(FIXTURES),
           "--submissions", str(folder), "--jobs", "1", "--timeout", "300", "--isolation", "sandbox",
           # each student here has one notebook: fork anyway, so the attacks meet forked kernels
           # (the default path for a student's week; test_grading_hostile meets fresh ones)
           "--kernels", "forked"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    print(r.stdout, r.stderr[-4000:])
    assert r.returncode == 0, r.stderr[-4000:]
    with open(course / "grades.csv", newline="") as f:
        rows = {x["student_id"]: x for x in csv.DictReader(f)}
    return {"course": course, "rows": rows, "planted": _planted()}


def test_the_run_used_the_sandbox_and_says_so(run):
    info = json.loads((run["course"] / "grading_run.json").read_text())
    assert info["isolation"] == SANDBOX
    res = json.loads((run["course"] / "results/zz-innocent" / f"{NB}.json").read_text())
    assert res["isolation"] == SANDBOX
    # every notebook forked from its student's own zygote (one start per student)
    assert info["kernels"].startswith("forked"), info
    assert len(info["zygote_start_s"]) == len(ATTACKS) + 1, info
    for sid in list(ATTACKS) + ["zz-innocent"]:
        res = json.loads((run["course"] / f"results/{sid}" / f"{NB}.json").read_text())
        assert res["kernel"] == "forked", (sid, res)


def test_innocent_after_hostile_gets_full_marks(run):
    row = run["rows"]["zz-innocent"]
    assert (row["status"], float(row["score"]), row["reason"]) == ("graded", 5.0, ""), row


@pytest.mark.parametrize("sid", sorted(ATTACKS))
def test_hostile_row_is_flagged_with_what_it_tried(run, sid):
    row = run["rows"][sid]
    assert row["status"] == "tampered", row
    assert REASON[sid] in row["reason"], row


def test_nothing_planted_survives(run):
    assert run["planted"] == []


def test_no_feedback_holds_a_hidden_test_or_a_solution(run):
    source = nbformat.read(str(run["course"] / "source/week06" / f"{NB}.ipynb"), as_version=4)
    hidden = {l for c in source.cells for l in _blocks(c.source, *HIDDEN) if len(l) > 10}
    solution = {l for c in source.cells for l in _blocks(c.source, *synth.MARKERS) if len(l) > 10}
    assert hidden and solution
    files = sorted((run["course"] / "feedback").rglob("*.html"))
    assert len(files) == len(ATTACKS) + 1
    for f in files:
        text = _text(f)
        leaked = [l for l in hidden if l in text]
        assert not leaked, f"{f.parent.parent.name}: {leaked}"
    reader = _text(run["course"] / "feedback/h5-reader/week06" / f"{NB}.html")
    # the reader's own answer cell holds ANSWER, which matches no solution line of the fixture
    assert not [l for l in solution if l in reader and l not in ANSWER]
