"""Nothing lost, nothing gamed: hostile submissions on the small fixture notebook
(tests/fixtures/week06/day0_fixture.ipynb, same structure as the course notebooks), graded in
ONE `python -m autograde all --jobs 2` run next to a perfect and a blank student.  Each gets
its CSV row with the right status, a reason and a feedback file, and none disturbs the others.
Also: collect's naming rule, Colab metadata stripping and unattributable files."""
import copy
import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "week06"
NB = "day0_fixture"


def _cache():
    """The session's model cache (conftest builds the ci model there once)."""
    from loraweek.cache import cache_root

    return cache_root()


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", LORAWEEK_CACHE=str(_cache()))


def _cells(nb, gid):
    return [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid]


def _answer(nb, gid, code):
    nb = copy.deepcopy(nb)
    nb.cells[_cells(nb, gid)[0]].source = code
    return nb


def hostile(course):
    src, rel = course / "source/week06" / f"{NB}.ipynb", course / "release/week06" / f"{NB}.ipynb"
    perfect, blank = synth.perfect(src, rel), synth.blank(rel)
    out = {"perfect": perfect, "blank": blank}

    nb = copy.deepcopy(perfect)
    del nb.cells[_cells(nb, "test_mask")[0]]
    out["deleted"] = nb

    nb = copy.deepcopy(perfect)
    i = _cells(nb, "test_scaling")[0]
    dup = copy.deepcopy(nb.cells[i])
    dup["id"] = "duplicate1"
    nb.cells.insert(i, dup)
    out["duplicated"] = nb

    nb = copy.deepcopy(perfect)
    a, b = _cells(nb, "ex_mask")[0], _cells(nb, "test_mask")[0]
    moved = nb.cells[a:b + 1]
    del nb.cells[a:b + 1]
    s = _cells(nb, "ex_scaling")[0]
    nb.cells[s:s] = moved
    out["reordered"] = nb

    nb = copy.deepcopy(blank)
    for gid in ("test_lora_params", "test_scaling", "test_mask"):
        nb.cells[_cells(nb, gid)[0]].source = "pass  # tests removed"
    out["editedtests"] = nb

    out["infloop"] = _answer(perfect, "ex_scaling", "def lora_scaling(alpha, r):\n    return alpha / r\nwhile True:\n    pass")
    out["memhog"] = _answer(perfect, "ex_mask", "hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))")
    out["sysexit"] = _answer(perfect, "ex_scaling", "def lora_scaling(alpha, r):\n    return alpha / r\nimport sys\nsys.exit(0)")
    out["osexit"] = _answer(perfect, "ex_mask", "import os\nos._exit(0)")
    out["selfkill"] = _answer(perfect, "ex_mask", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    # redefine the self-check helper and monkeypatch the package the hidden tests import
    out["monkeypatch"] = _answer(blank, "ex_lora_params", """\
check_equal = lambda *args, **kwargs: print("OK")
import loraweek.lora.layer, importlib, math
loraweek.lora.layer.lora_param_formula = lambda *a, **k: None
math.isclose = lambda *a, **k: True
def lora_param_count(d_in, d_out, r):
    return None
def lora_scaling(alpha, r):
    return 2.0""")
    # rewrite every later cell (the tests included) into `pass`
    out["transformer"] = _answer(blank, "ex_lora_params",
                                 "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])")
    # write into the grading folder: the gradebooks and the instructor's hidden tests
    # up from its working folder, and at the course's own path (a student can learn it, e.g.
    # from a traceback): in the sandbox neither leads anywhere, but the attempt is flagged
    out["writer"] = _answer(blank, "ex_lora_params", f"""\
from pathlib import Path
here = Path.cwd()
for up in [here] + list(here.parents)[:6] + [Path({str(course)!r})]:
    for db in up.glob("*.db"):
        db.write_bytes(b"hacked")
    for f in up.glob("source/week06/*.ipynb"):
        f.write_text(f.read_text().replace("assert ", "pass  # "))
try:
    Path({str(course / "gradebook.db")!r}).write_bytes(b"hacked")
except OSError:
    pass
def lora_param_count(d_in, d_out, r):
    return 0""")
    return out


EXPECTED = {
    "perfect": ("graded", 5), "blank": ("graded", 0), "deleted": ("tampered", 3),
    "duplicated": ("tampered", 5), "reordered": ("tampered", 5), "editedtests": ("tampered", 0),
    "infloop": ("timed out", None), "memhog": ("out of memory", None), "sysexit": ("graded", 5),
    "osexit": ("graded", 3), "selfkill": ("crashed", 3), "monkeypatch": ("tampered", 0), "transformer": ("tampered", 0),
    "writer": ("tampered", 0), "notjson": ("invalid notebook", 0), "notanotebook": ("invalid notebook", 0),
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    from autograde.course import prepare_course

    course = prepare_course(tmp_path_factory.mktemp("hostile") / "course", FIXTURES)
    folder = tmp_path_factory.mktemp("submissions")
    for sid, nb in hostile(course).items():
        nbformat.write(nb, str(folder / f"{sid}__{NB}.ipynb"))
    (folder / f"notjson__{NB}.ipynb").write_text('{"cells": [ this is not json')
    (folder / f"notanotebook__{NB}.ipynb").write_text('{"hello": "world"}')
    cmd = [sys.executable, "-m", "autograde", "all", "--course-dir", str(course), "--solutions", str(FIXTURES),
           "--submissions", str(folder), "--jobs", "2", "--timeout", "120", "--cell-timeout", "20",
           "--memory-mb", "2500"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    print(r.stdout, r.stderr[-4000:])
    assert r.returncode == 0, r.stderr[-4000:]
    with open(course / "grades.csv", newline="") as f:
        rows = {x["student_id"]: x for x in csv.DictReader(f)}
    return {"course": course, "rows": rows, "stdout": r.stdout}


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_hostile_submission_gets_row_status_reason_and_feedback(hostile_run, sid):
    status, score = EXPECTED[sid]
    row = hostile_run["rows"][sid]
    assert row["notebook"] == NB
    assert row["status"] == status, row
    if score is not None:
        assert float(row["score"]) == score, row
    assert float(row["max_score"]) == 5
    if status != "graded":
        assert row["reason"], row
    fb = hostile_run["course"] / "feedback" / sid / "week06" / f"{NB}.html"
    assert fb.exists() and fb.stat().st_size > 500


def test_course_folder_was_restored(hostile_run):
    course = hostile_run["course"]
    assert b"hacked" not in (course / "gradebook.template.db").read_bytes()
    assert "assert " in (course / "source/week06" / f"{NB}.ipynb").read_text()
    # in the sandbox the writes never reach the course (the audit hook names the attempt);
    # with the guard they are put back and the row names what changed
    reason = hostile_run["rows"]["writer"]["reason"]
    assert "wrote into the course" in reason or "tried to" in reason, reason


def test_per_exercise_summary_is_printed(hostile_run):
    out = hostile_run["stdout"]
    assert "exercise" in out and "full_marks" in out and "test_lora_params" in out


def test_collect_attributes_strips_and_reports(tmp_path):
    from autograde.collect import attribute, run
    from autograde.course import prepare_course

    names = ["day1_lora_qlora_intro", "day2_qlora_finetuning"]
    assert attribute(Path("alice/day2_qlora_finetuning.ipynb"), names) == ("alice", "day2_qlora_finetuning")
    assert attribute(Path("s123__day1_lora_qlora_intro.ipynb"), names) == ("s123", "day1_lora_qlora_intro")
    assert attribute(Path("s123_Copy of day1_lora_qlora_intro (2).ipynb"), names) == ("s123", "day1_lora_qlora_intro")
    assert attribute(Path("Nguyen Van A_20231234_assignsubmission_file_day2_qlora_finetuning.ipynb"), names) \
        == ("20231234", "day2_qlora_finetuning")
    assert attribute(Path("nguyenvana_20231234_998877_day2_qlora_finetuning.ipynb"), names) \
        == ("20231234", "day2_qlora_finetuning")
    assert attribute(Path("my_homework.ipynb"), names) is None

    course = prepare_course(tmp_path / "course", FIXTURES)
    nb = json.loads((course / "release/week06" / f"{NB}.ipynb").read_text())
    nb["metadata"]["colab"] = {"provenance": [{"user": "Alice", "photoUrl": "https://x/photo.jpg"}]}
    for c in nb["cells"]:
        c["metadata"].update(id="abc", outputId="def", executionInfo={"user": {"displayName": "Alice",
                                                                                "photoUrl": "p"}})
    zpath = tmp_path / "lms.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr(f"Alice Smith_1001_assignsubmission_file_{NB}.ipynb", json.dumps(nb))
        z.writestr(f"bob/{NB}.ipynb", json.dumps(nb))
        z.writestr("random_notes.txt", "hello")
        z.writestr("homework.ipynb", json.dumps(nb))
        z.writestr(f"carol__{NB}.ipynb", "not json at all")
    assert run(course, zpath) == 0
    for sid in ("1001", "bob", "carol"):
        assert (course / "submitted" / sid / "week06" / f"{NB}.ipynb").exists()
    text = (course / "submitted/1001/week06" / f"{NB}.ipynb").read_text()
    assert "Alice" not in text and "photoUrl" not in text and "outputId" not in text and '"colab"' not in text
    report = json.loads((course / "collect_report.json").read_text())
    assert sorted(report["unattributed"]) == ["homework.ipynb", "random_notes.txt"]
    assert (course / "unattributed" / "homework.ipynb").exists()
