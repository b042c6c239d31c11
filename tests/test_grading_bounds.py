"""Every submission's memory, /tmp, home, processes and time are bounded by the kernel's own
mechanisms (autograde/limits.py), and the row says which bound was hit.

One `python -m autograde all --kernels forked --jobs 2` run on the fixture notebook with small
caps (64 MiB /tmp, home and working folder, a low process cap, a 20 s cell timeout): a notebook
that fills /tmp, one that fills its home, one its working folder, one /dev/shm, a fork bomb, a last exercise that ignores
SIGINT in an endless loop, and an innocent perfect notebook saved with CRLF line ends.  Each gets
its own row; the innocent ones get full marks with status `graded`.  Plus the mechanisms alone:
a real cgroup OOM-kills a process whose RSS passes its limit *and* one whose tmpfs pages do.
"""
import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import synth  # noqa: E402
from autograde.limits import CappedFolder, Cgroup  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "week06"
NB = "day0_fixture"
CAP_MB = 64            # /tmp, home and /dev/shm caps of this run
MAX_PROCESSES = 160    # well above a kernel's own threads (peak_processes in the results), far below a bomb


def _probe_cgroup():
    cg = Cgroup.create("test-probe", 64, 16)
    ok, why = cg.enforced, cg.why
    cg.remove()
    return ok, why


CGROUP_OK, CGROUP_WHY = _probe_cgroup()
needs_cgroup = pytest.mark.skipif(not CGROUP_OK, reason=f"no writable memory+pids cgroup here ({CGROUP_WHY}); "
                                  "run as root on a machine with cgroup v1 memory/pids or a delegated v2")
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bwrap not installed (apt-get install bubblewrap): without the sandbox "
                                        "a /tmp hog would fill the host's /tmp")


def _cells(nb, gid):
    return [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid]


def _append(nb, gid, code):
    """The perfect answer of `gid`, followed by `code` in the same cell."""
    nb = copy.deepcopy(nb)
    cell = nb.cells[_cells(nb, gid)[0]]
    cell.source = cell.source.rstrip() + "\n" + code
    return nb


FILL = """
from pathlib import Path
with open(Path({where}) / "filler.bin", "wb") as f:
    while True:
        f.write(b"x" * 2**20)
"""
# the parent stops at the first refused fork; every child forks on, forever, until stopped
FORK_BOMB = """
import os, time
born = 0
while True:
    try:
        pid = os.fork()
    except OSError as exc:
        print("fork refused after", born, "children:", exc)
        break
    if pid == 0:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    born += 1
"""
DEAF_LOOP = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""


def _crlf(nb):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        c.source = c.source.replace("\n", "\r\n") + "  \r\n"
    return nb


@pytest.fixture(scope="module")
def bounded_run(tmp_path_factory):
    from autograde.course import prepare_course

    course = prepare_course(tmp_path_factory.mktemp("bounds") / "course", FIXTURES)
    src, rel = course / "source/week06" / f"{NB}.ipynb", course / "release/week06" / f"{NB}.ipynb"
    perfect = synth.perfect(src, rel)
    subs = {
        "perfect": perfect,
        "crlf": _crlf(perfect),
        "tmphog": _append(perfect, "ex_mask", FILL.format(where="'/tmp'")),
        "homehog": _append(perfect, "ex_mask", FILL.format(where="Path.home()")),
        "shmhog": _append(perfect, "ex_mask", FILL.format(where="'/dev/shm'")),
        "workhog": _append(perfect, "ex_mask", FILL.format(where="'.'")),
        "forkbomb": _append(perfect, "ex_scaling", FORK_BOMB),
        "deaf": _append(perfect, "ex_mask", DEAF_LOOP),
    }
    folder = tmp_path_factory.mktemp("submissions")
    for sid, nb in subs.items():
        nbformat.write(nb, str(folder / f"{sid}__{NB}.ipynb"))
    cmd = [sys.executable, "-m", "autograde", "all", "--course-dir", str(course), "--solutions", str(FIXTURES),
           "--submissions", str(folder), "--jobs", "2", "--kernels", "forked", "--timeout", "180",
           "--cell-timeout", "20", "--interrupt-grace", "5", "--memory-mb", "2500",
           "--tmp-mb", str(CAP_MB), "--home-mb", str(CAP_MB), "--scratch-mb", str(CAP_MB), "--max-processes", str(MAX_PROCESSES)]
    from loraweek.cache import cache_root

    env = dict(os.environ, HF_HUB_OFFLINE="1", LORAWEEK_CACHE=str(cache_root()))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    print(r.stdout, r.stderr[-4000:])
    assert r.returncode == 0, r.stderr[-4000:]
    with open(course / "grades.csv", newline="") as f:
        rows = {x["student_id"]: x for x in csv.DictReader(f)}
    results = {p.parent.name: json.loads(p.read_text()) for p in (course / "results").glob(f"*/{NB}.json")}
    return {"rows": rows, "results": results, "stdout": r.stdout,
            "run": json.loads((course / "grading_run.json").read_text())}


@needs_bwrap
@pytest.mark.parametrize("sid", ["perfect", "crlf"])
def test_innocent_notebooks_get_full_marks_graded(bounded_run, sid):
    row = bounded_run["rows"][sid]
    assert (row["status"], float(row["score"])) == ("graded", 5.0), row
    assert row["reason"] == "", row   # CRLF line ends and trailing spaces are not an edit


@needs_bwrap
@pytest.mark.parametrize("sid, says", [("tmphog", f"/tmp reached its {CAP_MB} MiB cap"),
                                       ("homehog", f"the home folder reached its {CAP_MB} MiB cap"),
                                       ("shmhog", "a write was refused"),
                                       ("workhog", f"its working folder reached its {CAP_MB} MiB cap")])
def test_a_full_folder_is_out_of_memory_and_named(bounded_run, sid, says):
    row = bounded_run["rows"][sid]
    assert row["status"] == "out of memory", row
    if sid == "workhog" and not CGROUP_OK:
        pytest.skip("the working folder is capped only where the grader can mount a tmpfs (root)")
    if sid != "shmhog" and not CGROUP_OK:   # bwrap's own --size tmpfs: the refused write is the evidence
        says = "a write was refused"
    assert says in row["reason"], row
    assert float(row["score"]) == 5.0, row   # the answers were right; only the cap was hit


@needs_bwrap
@needs_cgroup
def test_fork_bomb_ends_at_the_process_cap(bounded_run):
    row = bounded_run["rows"]["forkbomb"]
    assert row["status"] == "out of memory", row
    assert f"too many processes: the notebook reached its cap of {MAX_PROCESSES}" in row["reason"], row
    # the bomb's cell may end at once or hang until the cell timeout stops its kernel (a kernel
    # whose forks are refused cannot always start a thread again); either way the test above it
    # keeps its points and the row says why
    assert bounded_run["results"]["forkbomb"]["scores"]["test_lora_params"] == 2.0, row
    assert bounded_run["results"]["forkbomb"]["pids_refused"] > 0


@needs_bwrap
def test_a_cell_that_ignores_the_interrupt_times_out_and_keeps_earlier_points(bounded_run):
    row = bounded_run["rows"]["deaf"]
    assert row["status"] == "timed out", row
    assert "ex_mask" in row["reason"] and "ignored the interrupt" in row["reason"], row
    scores = bounded_run["results"]["deaf"]["scores"]
    assert scores == {"test_lora_params": 2.0, "test_scaling": 1.0, "test_mask": 0.0}, scores


@needs_bwrap
@needs_cgroup
def test_run_records_how_each_bound_is_enforced(bounded_run):
    bounds = bounded_run["run"]["bounds"]
    assert "cgroup v" in bounds["memory"] and "pids.max" in bounds["processes"], bounds
    for sid, r in bounded_run["results"].items():
        assert r["bounded_by"].startswith("cgroup v"), (sid, r["bounded_by"])
    innocent = bounded_run["results"]["perfect"]
    assert 0 < innocent["peak_processes"] < MAX_PROCESSES / 2, innocent   # the cap is far from a real kernel
    assert innocent["peak_memory_mb"] > 0


def _run_in(cg, code, timeout=60):
    return subprocess.run(cg.wrap([sys.executable, "-c", code], sys.executable), capture_output=True,
                          text=True, timeout=timeout)


@needs_cgroup
def test_cgroup_counts_resident_memory(tmp_path):
    cg = Cgroup.create("test-rss", 100, 64)
    try:
        r = _run_in(cg, "x = bytearray(300 * 2**20)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint('survived')")
        assert r.returncode == -9 and "survived" not in r.stdout, (r.returncode, r.stdout, r.stderr)
        assert cg.oom_kills() >= 1
    finally:
        cg.remove()


@needs_cgroup
def test_cgroup_counts_tmpfs_pages_an_rss_sum_never_sees(tmp_path):
    folder = CappedFolder.create(tmp_path / "big", 1024)   # the folder's own cap is far away
    if not folder.capped:
        pytest.skip(f"cannot mount a tmpfs here: {folder.why}")
    cg = Cgroup.create("test-tmpfs", 100, 64)
    try:
        r = _run_in(cg, f"f = open({str(folder.path / 'x')!r}, 'wb')\n"
                        "for _ in range(300): f.write(b'x' * 2**20); f.flush()\nprint('survived')")
        assert r.returncode == -9 and "survived" not in r.stdout, (r.returncode, r.stdout, r.stderr)
        assert cg.oom_kills() >= 1
        assert folder.used_mb() < 120   # the writer died near the group's 100 MiB, not at the folder's cap
    finally:
        cg.remove()
        folder.release()


@needs_cgroup
def test_cgroup_caps_processes(tmp_path):
    cg = Cgroup.create("test-pids", 200, 20)
    # the probe above made a group; this one must be made too, or the bomb below runs unbounded
    assert cg.enforced, f"could not make the test's cgroup: {cg.why}"
    try:
        r = _run_in(cg, "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                        "            time.sleep(30)\n        n += 1\nexcept OSError:\n    print('refused at', n)")
        assert "refused at" in r.stdout, r.stderr
        forks, refused = int(r.stdout.split()[-1]), cg.pids_refused()
        assert forks < 20 and refused >= 1, (f"{forks} forks before one was refused, {refused} refused by the "
                                            f"group's pids.max (20); the group: {cg.pids_dir}")
    finally:
        cg.remove()   # kills the sleeping children too
    assert not cg.pids()


def test_locked_cell_comparison_ignores_line_ends_but_catches_edits(tmp_path):
    from autograde.course import prepare_course
    from autograde.integrity import check_submission

    course = prepare_course(tmp_path / "course", FIXTURES)
    rel = course / "release/week06" / f"{NB}.ipynb"
    nb = nbformat.read(str(rel), as_version=4)
    crlf = tmp_path / "crlf.ipynb"
    nbformat.write(_crlf(nb), str(crlf))
    assert check_submission(crlf, rel).problems == []
    edited = _crlf(nb)
    i = _cells(edited, "test_mask")[0]
    edited.cells[i].source = edited.cells[i].source.replace("-100", "-99", 1)
    bad = tmp_path / "edited.ipynb"
    nbformat.write(edited, str(bad))
    assert check_submission(bad, rel).problems == ["locked cell test_mask was edited"]
