"""Forked kernels (autograde/kernel_zygote.py): what a kernel forked from a student's zygote must
still be -- jailed, fresh, bounded, interruptible -- and what a hostile one must not reach.

Real parts: a real bubblewrap jail per student, a real zygote, real IPython kernels driven by
nbclient, and `python -m code` (a console reading stdin) where the launcher's plumbing itself is
under test.  The zygote here preloads only what these kernels need, so the module runs in
seconds; the grading tests run the real preload.
"""
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde.isolation.bwrap import KERNEL_PID_FILE, ZYGOTE_FILE, JailedKernelManager, StudentJail, probe  # noqa: E402
from autograde.worker import worker_env  # noqa: E402

pytestmark = pytest.mark.skipif(not probe()[0], reason=f"no sandbox here: {probe()[1]}")
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "numpy")


def _jail(tmp_path, student):
    jail = StudentJail(student, ["nb1", "nb2", "nb3"], worker_env(1, 1), tmp_path / f"{student}.log",
                       preload=PRELOAD)
    jail.ensure_running(timeout=120)
    return jail


@pytest.fixture
def alice(tmp_path):
    jail = _jail(tmp_path, "alice")
    yield jail
    jail.stop()


@pytest.fixture
def bob(tmp_path):
    jail = _jail(tmp_path, "bob")
    yield jail
    jail.stop()


def run_cells(jail, nb, cells, timeout=60, **client):
    """Execute `cells` in a kernel forked from `jail`'s zygote; the stdout of each cell."""
    cfg = Config()   # nbclient makes (and so shuts down) the kernel manager, as the grader's does
    cfg.JailedKernelManager.zygote_socket = jail.socket
    cfg.JailedKernelManager.transport = "ipc"
    cfg.JailedKernelManager.connection_file = str(jail.runtime(nb) / f"k-{uuid.uuid4().hex[:8]}.json")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, kernel_manager_class=JailedKernelManager, config=cfg, timeout=timeout,
                   kernel_name="python3",
                   resources={"metadata": {"path": str(jail.scratch(nb))}}, **client).execute()
    return ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
            for c in notebook.cells]


def console(jail, nb, stdin, *, limit_as=None, timeout=60):
    """The launcher with `python -m code` as the 'kernel': returns the finished process."""
    def limits():
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    cmd = [sys.executable, "-I", "-S", str(ZYGOTE_FILE), "launch", jail.socket,
           str(jail.runtime(nb) / KERNEL_PID_FILE), "--", sys.executable, "-m", "code"]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=jail.scratch(nb), preexec_fn=limits)


def test_kernel_is_forked_inside_the_jail(alice):
    out = run_cells(alice, "nb1", [
        "import sys, os\nprint('numpy' in sys.modules)",     # preloaded: the kernel is a fork
        "print(os.getcwd())",
        f"print(os.path.exists({str(ROOT / 'solutions')!r}), os.path.exists({str(ROOT / 'autograde')!r}))",
        "print(os.environ['HOME'] == os.path.expanduser('~'), 'JPY_PARENT_PID' in os.environ)",
    ])
    assert out[0].strip() == "True", out
    assert out[1].strip() == str(alice.scratch("nb1")), out
    assert out[2].strip() == "False False", f"the repo's answers are visible from the jail: {out}"
    assert out[3].strip() == "True False", out
    # the launcher told the grader which host process the kernel is (its watchdog follows it)
    pid_file = alice.runtime("nb1") / KERNEL_PID_FILE
    assert pid_file.exists() and int(pid_file.read_text()) > 1


def test_each_kernel_starts_from_the_zygote_not_from_the_previous_kernel(alice):
    first = run_cells(alice, "nb1", [
        "import numpy, random, sys\nnumpy.LW_MARK = 1\nsys.modules['lw_planted'] = numpy\n"
        "print(random.random(), numpy.random.rand())"])
    second = run_cells(alice, "nb2", [
        "import numpy, random, sys\nprint(hasattr(numpy, 'LW_MARK'), 'lw_planted' in sys.modules)",
        "print(random.random(), numpy.random.rand())"])
    assert second[0].strip() == "False False", second
    assert first[0] != second[1], "two kernels drew the same random numbers (the zygote's state)"


def test_memory_bound_exit_status_and_interrupts_reach_the_kernel(alice):
    limit = 3 * 2**30
    r = console(alice, "nb1", "import resource\nprint('AS', resource.getrlimit(resource.RLIMIT_AS)[0])\n"
                              "raise SystemExit(7)\n", limit_as=limit)
    assert f"AS {limit}" in r.stdout, r.stderr
    assert r.returncode == 7, (r.returncode, r.stderr[-500:])

    # a cell that never ends is interrupted (nbclient's cell timeout sends SIGINT) and the kernel
    # runs the next cell
    with pytest.raises(CellTimeoutError):
        run_cells(alice, "nb2", ["import time\ntime.sleep(120)"], timeout=5)
    out = run_cells(alice, "nb2", ["import time\ntry:\n    time.sleep(120)\nexcept KeyboardInterrupt:\n"
                                   "    print('interrupted')", "print('next')"],
                    timeout=5, allow_errors=True, interrupt_on_timeout=True)
    assert out == ["interrupted\n", "next\n"], out


def _sleepers(tag):
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if tag in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def test_what_a_kernel_leaves_behind_dies_with_it(alice):
    tag = f"{time.time() % 1000:.6f}"
    # a double-forked, setsid daemon: the classic way to outlive one's parent
    run_cells(alice, "nb1", [f"""import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{tag}"])
    os._exit(0)
time.sleep(0.5)
print("planted")"""])
    deadline = time.monotonic() + 10
    while _sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _sleepers(tag), "a daemon started by a kernel outlived its notebook"


def test_a_kernel_that_kills_the_zygote_costs_only_its_own_notebook(alice, bob, tmp_path):
    with pytest.raises(DeadKernelError):
        run_cells(alice, "nb1", ["import os, signal, time\nos.kill(-1, signal.SIGKILL)\ntime.sleep(30)"],
                  timeout=20)
    # the other student's zygote is in another jail: untouched
    assert run_cells(bob, "nb1", ["print(2 + 2)"]) == ["4\n"]
    # ...and cannot see alice's folders
    probe_path = alice.scratch("nb2")
    assert run_cells(bob, "nb2", [f"import os\nprint(os.path.exists({str(probe_path)!r}))"]) == ["False\n"]
    # alice's next notebook gets a new zygote
    deadline = time.monotonic() + 10
    while alice.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    alice.ensure_running(timeout=120)
    assert len(alice.start_s) == 2
    assert run_cells(alice, "nb3", ["print('alive')"]) == ["alive\n"]


def test_launcher_fails_fast_when_the_zygote_has_ended(alice):
    alice.stop(remove=False)
    t0 = time.monotonic()
    r = console(alice, "nb1", "print('hi')\n")
    assert r.returncode != 0 and time.monotonic() - t0 < 10
    assert "zygote" in r.stderr, r.stderr
