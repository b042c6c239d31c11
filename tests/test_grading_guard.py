"""The fallback guard (`--isolation guard`, for machines where bubblewrap cannot start):
fingerprint, restore, flag.

* `Snapshot` on a temporary tree: a rewritten file is put back, a planted file removed, both
  reported; new files where a notebook may legitimately try to write (the model cache) are
  removed without being reported.
* One guard-mode run, hostile students before an innocent one.  The course package and the
  model cache are private copies (PYTHONPATH, LORAWEEK_CACHE): the guard restores *after* the
  fact, and this checkout is shared with people editing the real package.  A notebook that
  finds the grader's folder through /proc and prints the instructor's notebook gets its row
  flagged and the printed lines removed from its feedback.
"""
import copy
import csv
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402
from autograde.isolation.fs_restore import Snapshot  # noqa: E402
from autograde.leaks import HIDDEN, _blocks  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "week06"
NB = "day0_fixture"
ANSWER = "def lora_param_count(d_in, d_out, r):\n    return r * (d_in + d_out)\n"
ATTACKS = {
    "g1-package": '''import loraweek.lora.layer as _m, pathlib
_p = pathlib.Path(_m.__file__)
_p.write_text(_p.read_text() + "\\ndef lora_param_formula(*a, **k):\\n    return -1\\n")
''',
    "g2-cache": '''from loraweek.models.tiny import ensure_ci_model
(ensure_ci_model() / "config.json").write_text("{}")
''',
    # the grader's command line names its work folder; the instructor's notebook is inside
    "g3-procreader": '''import os, pathlib
_cmd = pathlib.Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\\0")
_work = pathlib.Path(_cmd[_cmd.index(b"--work") + 1].decode())
for _f in sorted((_work / "source" / "week06").glob("*.ipynb")):
    print(_f.read_text())
''',
}


def test_snapshot_restores_and_reports(tmp_path):
    tree, cache = tmp_path / "pkg", tmp_path / "cache"
    (tree / "sub").mkdir(parents=True)
    cache.mkdir()
    (tree / "a.py").write_text("A = 1\n")
    (tree / "sub" / "b.py").write_text("B = 2\n")
    (cache / "model.bin").write_bytes(b"weights")
    snap = Snapshot([tree, cache], quiet_new=[cache])
    assert snap.check() == []
    (tree / "a.py").write_text("A = -1\n")
    (tree / "sub" / "evil.pth").write_text("import os\n")
    (cache / "adapter").mkdir()
    (cache / "adapter" / "w.bin").write_bytes(b"new")
    changed = snap.check()
    assert changed == sorted([str(tree / "a.py"), str(tree / "sub" / "evil.pth")])
    assert (tree / "a.py").read_text() == "A = 1\n"
    assert not (tree / "sub" / "evil.pth").exists() and not (cache / "adapter").exists()
    (cache / "model.bin").write_bytes(b"edited")
    assert snap.check() == [str(cache / "model.bin")]
    assert (cache / "model.bin").read_bytes() == b"weights"


@pytest.fixture(scope="module")
def guard_run(tmp_path_factory):
    import loraweek
    from autograde.course import prepare_course
    from loraweek.cache import cache_root

    base = tmp_path_factory.mktemp("guard")
    shared = base / "shared"
    shutil.copytree(Path(loraweek.__file__).parent, shared / "loraweek",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(cache_root(), base / "cache", ignore=shutil.ignore_patterns("*.lock", ".build-*", "npm"))
    course = prepare_course(base / "course", FIXTURES)
    src, rel = course / "source/week06" / f"{NB}.ipynb", course / "release/week06" / f"{NB}.ipynb"
    perfect = synth.perfect(src, rel)
    folder = base / "subs"
    folder.mkdir()
    for sid, code in ATTACKS.items():
        nb = copy.deepcopy(perfect)
        for c in nb.cells:
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "ex_lora_params":
                c.source = code + ANSWER
        nbformat.write(nb, str(folder / f"{sid}__{NB}.ipynb"))
    nbformat.write(perfect, str(folder / f"zz-innocent__{NB}.ipynb"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", LORAWEEK_CACHE=str(base / "cache"),
               PYTHONPATH=str(shared) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "autograde", "all", "--course-dir", str(course), "--solutions", str(FIXTURES),
           "--submissions", str(folder), "--jobs", "1", "--timeout", "300", "--isolation", "guard"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    print(r.stdout, r.stderr[-4000:])
    assert r.returncode == 0, r.stderr[-4000:]
    with open(course / "grades.csv", newline="") as f:
        rows = {x["student_id"]: x for x in csv.DictReader(f)}
    return {"course": course, "rows": rows, "package": shared / "loraweek", "cache": base / "cache",
            "stdout": r.stdout}


def test_guard_mode_flags_restores_and_keeps_the_innocent_whole(guard_run):
    rows = guard_run["rows"]
    assert "isolation: guard" in guard_run["stdout"]
    assert (rows["zz-innocent"]["status"], float(rows["zz-innocent"]["score"])) == ("graded", 5.0), rows
    for sid, what in (("g1-package", "lora/layer.py"), ("g2-cache", "config.json"),
                      ("g3-procreader", "tried to read")):
        assert rows[sid]["status"] == "tampered", rows[sid]
        assert what in rows[sid]["reason"], rows[sid]
    assert "return -1" not in (guard_run["package"] / "lora" / "layer.py").read_text()
    configs = list(guard_run["cache"].glob("tiny-qwen2-ci-*/config.json"))
    assert configs and all(c.read_text().strip() != "{}" for c in configs)


def test_guard_mode_feedback_holds_no_hidden_test(guard_run):
    course = guard_run["course"]
    source = nbformat.read(str(course / "source/week06" / f"{NB}.ipynb"), as_version=4)
    hidden = {l for c in source.cells for l in _blocks(c.source, *HIDDEN) if len(l) > 10}
    for f in (course / "feedback").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", f.read_text()))
        assert not [l for l in hidden if l in text], f
    assert "instructor" in guard_run["rows"]["g3-procreader"]["reason"]


def test_leak_redaction_spares_the_students_own_code_and_failing_tests():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from autograde.leaks import REDACTED, instructor_lines, redact

    hidden = "assert secret_answer(3) == 42"
    test = {"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "locked": True, "points": 1}}
    sol = {"nbgrader": {"grade": False, "solution": True, "grade_id": "s", "locked": False}}
    source = new_notebook(cells=[
        new_code_cell("def secret_answer(x):\n    ### BEGIN SOLUTION\n    return x * 14\n    ### END SOLUTION", metadata=sol),
        new_code_cell(f"check(1)\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS", metadata=test)])
    release = new_notebook(cells=[new_code_cell("def secret_answer(x):\n    raise NotImplementedError()", metadata=sol),
                                  new_code_cell("check(1)", metadata=test)])
    secret = instructor_lines(source, release)
    assert hidden in secret and "return x * 14" in secret and "check(1)" not in secret
    printed = new_output("stream", name="stdout", text=f"stolen:\n{hidden}\nreturn x * 14\n")
    failed = new_output("error", ename="AssertionError", evalue="", traceback=[f"----> 3 {hidden}"])
    own = new_output("error", ename="ValueError", evalue="", traceback=["----> 2     return x * 14"])
    student = new_notebook(cells=[
        new_code_cell("def secret_answer(x):\n    return x * 14", metadata=sol, outputs=[own]),
        new_code_cell("print(open('x').read())", outputs=[printed]),
        new_code_cell(source.cells[1].source, metadata=test, outputs=[failed])])
    assert redact(student, secret) == 1   # the hidden line printed by a student cell, only
    assert student.cells[1].outputs[0]["text"] == REDACTED + "\n"   # the whole dump goes
    assert student.cells[0].outputs[0]["traceback"] == ["----> 2     return x * 14"]
    assert student.cells[2].outputs[0]["traceback"] == [f"----> 3 {hidden}"]
    assert not [l for l in secret if l.startswith("import ")]


def test_show_hidden_tests_keeps_nbgraders_feedback(guard_run):
    course = guard_run["course"]
    page = course / "feedback/zz-innocent/week06" / f"{NB}.html"
    text = lambda: html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))  # noqa: E731
    hidden_line = "assert _math.isclose(lora_scaling(16, 64), 0.25)"
    assert hidden_line not in text()
    cmd = [sys.executable, "-m", "autograde", "feedback", "--course-dir", str(course), "--solutions", str(FIXTURES)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    subprocess.run(cmd + ["--show-hidden-tests"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert hidden_line in text()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    assert hidden_line not in text()
