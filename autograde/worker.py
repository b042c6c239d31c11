"""Run one submission's notebook in its own process with a wall-time and a memory bound.

The supervisor side (`run_bounded`) starts ``python -m autograde.worker ...`` in a new
session (process group), polls it, and kills the whole group when it runs past `timeout`
seconds or when the resident memory of its process tree passes `memory_mb`.  The worker side
(`main`) lowers its own address-space limit (RLIMIT_AS, inherited by the Jupyter kernel, so a
hog gets a MemoryError inside its cell) and runs nbgrader's Autograde converter on a private
course copy with GuardedExecute in place of Execute.  Where the grader could make one, the
worker starts inside the notebook's cgroup (limits.py): the kernel then bounds memory (RSS and
tmpfs pages) and processes itself, and the RSS sum here is only the fallback.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import REPO_ROOT
from .limits import HOME_MB, INTERRUPT_GRACE_S, TMP_MB


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    out_of_memory: bool
    wall_s: float
    peak_rss_mb: float
    cpu_s: float = 0.0   # CPU seconds of the whole process tree (as last seen): the time it
                         # would take alone on an idle machine, whatever else is running
    bounded_by: str = "watchdog"   # "cgroup v1" / "cgroup v2": the kernel enforced the memory bound
    peak_memory_mb: float = 0.0    # the cgroup's peak: RSS *and* tmpfs pages (0 without a cgroup)
    oom_kills: int = 0             # processes the cgroup's OOM killer ended
    pids_refused: int = 0          # forks refused at pids.max
    peak_processes: int = 0        # most tasks (processes + threads) seen at once in the cgroup


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc] + proc.children(recursive=True)
    except psutil.Error:
        return []


def _kill_group(pgid: int, procs: list[psutil.Process]) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in procs:  # children that left the group (setsid) but are still ours
        try:
            p.kill()
        except psutil.Error:
            pass


def _adopted(pid_file: Path | None) -> psutil.Process | None:
    """The process whose PID `pid_file` names (a kernel forked outside the worker's tree)."""
    try:
        return psutil.Process(int(pid_file.read_text())) if pid_file else None
    except (OSError, ValueError, psutil.Error):
        return None


def _kernels(tree: list[psutil.Process]) -> list[psutil.Process]:
    """The fresh Jupyter kernels of a tree: ``python -m ipykernel_launcher ...`` whose parent is
    not one (a process a kernel forked has the same command line).  A kernel forked by a zygote
    has the zygote's command line: it is the adopted one."""
    def is_kernel(p):
        try:
            return p.cmdline()[1:3] == ["-m", "ipykernel_launcher"]
        except (psutil.Error, IndexError):
            return False
    out = []
    for p in tree:
        try:
            if is_kernel(p) and not is_kernel(p.parent()):
                out.append((p.create_time(), p.pid, p))
        except psutil.Error:
            pass
    # one notebook, one kernel: the first started (an orphan of a fork bomb, re-parented to
    # bwrap's init, also has a parent that is not a kernel)
    return [min(out)[2]] if out else []


def _stop_forks(cgroup, worker: psutil.Process, kernels: list[psutil.Process]) -> None:
    """A fork bomb reached pids.max: kill everything in the notebook's cgroup but the grading
    worker, its direct children (bwrap or the kernel launcher), the kernel and the kernel's
    ancestors.  The bomb's cell then fails and the rest of the notebook runs; a kernel that
    cannot make progress any more (its killed children stay zombies, counted in pids.max,
    until it reaps them) is stopped by the cell timeout, and the cells above keep their points
    (cell_guard.GuardedExecute).  Called at every poll once a fork was refused."""
    keep = {worker.pid}
    try:
        keep |= {c.pid for c in worker.children()}
    except psutil.Error:
        pass
    for k in kernels:
        keep.add(k.pid)
        try:
            keep |= {p.pid for p in k.parents()}
        except psutil.Error:
            pass
    cgroup.kill_all_but(keep)


def run_bounded(cmd: list[str], cwd: Path, env: dict, log_path: Path, timeout: float,
                memory_mb: int, poll: float = 0.25, adopt: Path | None = None, cgroup=None) -> Outcome:
    """Run `cmd` bounded in time and memory.  `adopt`: a file where the worker's kernel launcher
    writes the PID of a kernel that is not its descendant (forked by a zygote): that kernel's time
    and memory count, and it dies with the worker.  `cgroup` (limits.Cgroup): the group `cmd`
    starts in; where it is enforced, the kernel bounds memory (processes + tmpfs) and processes,
    this loop watches its counters, and the RSS watchdog stands down."""
    start = time.monotonic()
    kernel = None
    enforced = cgroup is not None and cgroup.enforced
    refused, peak_cg, peak_tasks = 0, 0.0, 0
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    ps = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    cpu: dict[int, float] = {}
    timed_out = oom = False
    peak = 0.0
    while proc.poll() is None:
        tree = _tree(ps)
        if kernel is None or not kernel.is_running():
            kernel = _adopted(adopt)
        if kernel is not None:
            tree += _tree(kernel)
        for p in tree:
            seen.setdefault(p.pid, p)
        rss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        peak = max(peak, rss / 2**20)
        if enforced:
            peak_cg = max(peak_cg, cgroup.memory_mb_now())
            peak_tasks = max(peak_tasks, cgroup.processes_now())
            now_refused = cgroup.pids_refused()
            # once the cap has refused a fork, every poll stops what is left of the kernel's
            # tree: a process that was being forked while we killed may appear just after
            if now_refused > refused or refused:
                refused = max(refused, now_refused)
                _stop_forks(cgroup, ps, [kernel] if kernel is not None else _kernels(tree))
        if not enforced and rss / 2**20 > memory_mb:
            oom = True
        elif time.monotonic() - start > timeout:
            timed_out = True
        if oom or timed_out:
            _kill_group(proc.pid, list(seen.values()))
            break
        time.sleep(poll)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    # whatever the notebook left running (kernel, background processes) dies with it; in a
    # cgroup even what left the process tree (setsid, double fork) cannot escape
    _kill_group(proc.pid, list(seen.values()))
    out = Outcome(proc.returncode, timed_out, oom, time.monotonic() - start, peak, sum(cpu.values()))
    if enforced:
        cgroup.kill_all()
        out.bounded_by = f"cgroup v{cgroup.version}"
        out.peak_memory_mb = max(peak_cg, cgroup.peak_memory_mb())
        out.oom_kills, out.pids_refused = cgroup.oom_kills(), max(refused, cgroup.pids_refused())
        out.peak_processes = peak_tasks
        out.out_of_memory = out.out_of_memory or out.oom_kills > 0
    return out


def worker_env(jobs: int, threads: int | None = None, runtime: Path | None = None) -> dict:
    """Environment of a sandbox.  Torch threads default to 1 per notebook: the ci model is tiny,
    and OpenMP threads that outnumber the free cores (other sandboxes, other programs) spin-wait
    and can make a notebook several times slower.  Use --jobs to use more cores."""
    env = dict(os.environ)
    threads = str(max(1, threads or 1))
    env.update(NBGRADER_EXECUTION="autograde", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1",
               # nothing a kernel legitimately writes outside its folder: no .pyc either, so
               # the in-kernel audit can treat every write into the package as tampering
               PYTHONDONTWRITEBYTECODE="1")
    if runtime is not None:   # kernel connection files (and ipc sockets: short path, < 108 bytes)
        env["JUPYTER_RUNTIME_DIR"] = str(runtime)
    env.pop("JPY_PARENT_PID", None)
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="grade one notebook (internal: used by `grade`)")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--student", required=True)
    ap.add_argument("--notebook", required=True)
    ap.add_argument("--cell-timeout", type=float, default=300)
    ap.add_argument("--memory-mb", type=int, default=6144)
    ap.add_argument("--report", required=True)
    ap.add_argument("--isolation", choices=("sandbox", "guard"), default="guard")
    ap.add_argument("--home", type=Path, help="private home of the jailed kernel (sandbox mode)")
    ap.add_argument("--tmp", type=Path, help="host folder mounted as the jailed kernel's /tmp")
    ap.add_argument("--folders-capped", action="store_true", help="--home and --tmp are size-capped tmpfs mounts")
    ap.add_argument("--tmp-mb", type=int, default=TMP_MB, help="cap of /tmp and /dev/shm (sandbox mode)")
    ap.add_argument("--home-mb", type=int, default=HOME_MB, help="cap of the home (sandbox mode)")
    ap.add_argument("--interrupt-grace", type=float, default=INTERRUPT_GRACE_S,
                    help="seconds a timed-out cell has to obey the interrupt")
    ap.add_argument("--policy", default="{}", help="JSON: paths the in-kernel audit watches")
    ap.add_argument("--scratch", type=Path, help="the kernel's working folder")
    ap.add_argument("--zygote-socket", default="", help="fork the kernel from this zygote (sandbox mode)")
    a = ap.parse_args(argv)

    limit = a.memory_mb * 2**20
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError) as exc:
        print(f"sandbox: could not set RLIMIT_AS ({exc}); relying on the RSS watchdog", file=sys.stderr)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    from .course import load_config
    from .cell_guard import GuardedExecute

    cfg = load_config(a.work)
    cfg.Execute.timeout = int(a.cell_timeout)
    # Every output is in by the time the last cell replies; a graceful shutdown then spends about
    # 3 s per notebook while the kernel finalises (measured: the week 113 s -> 93 s forked, 134 s ->
    # 119 s fresh).  What the kernel leaves running dies with its jail / process group anyway.
    cfg.Execute.shutdown_kernel = "immediate"
    cfg.GuardedExecute.report_path = str(Path(a.report).resolve())
    cfg.GuardedExecute.trusted_notebook = str((a.work / "source" / "week06" / f"{a.notebook}.ipynb").resolve())
    cfg.GuardedExecute.policy = a.policy
    cfg.GuardedExecute.interrupt_grace = a.interrupt_grace
    if a.scratch:
        cfg.GuardedExecute.kernel_cwd = str(a.scratch.resolve())
    if a.isolation == "sandbox":
        from .isolation.bwrap import JailedKernelManager

        cfg.GuardedExecute.kernel_manager_class = JailedKernelManager
        cfg.JailedKernelManager.transport = "ipc"   # TCP does not cross the network namespace
        cfg.JailedKernelManager.scratch = str(a.scratch.resolve())
        cfg.JailedKernelManager.home = str(a.home.resolve())
        cfg.JailedKernelManager.tmp = str(a.tmp.resolve()) if a.tmp else ""
        cfg.JailedKernelManager.folders_capped = a.folders_capped
        cfg.JailedKernelManager.tmp_mb, cfg.JailedKernelManager.home_mb = a.tmp_mb, a.home_mb
        cfg.JailedKernelManager.zygote_socket = a.zygote_socket
    cfg.Autograde.autograde_preprocessors = [GuardedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                             LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                             CheckCellMetadata]
    coursedir = CourseDirectory(config=cfg)
    coursedir.student_id = a.student
    coursedir.notebook_id = a.notebook
    app = Autograde(coursedir=coursedir, config=cfg)
    app.force = True
    app.create_student = True
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
