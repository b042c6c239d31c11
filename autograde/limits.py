"""Bounds of one submission by the kernel's own mechanisms: a cgroup and size-capped tmpfs folders.

* ``Cgroup``: a memory + pids control group.  The memory limit counts everything the
  submission makes resident -- the RSS of all its processes *and* the pages of the tmpfs
  folders it writes (a jail's /tmp and home are tmpfs, i.e. RAM that an RSS sum never sees);
  ``pids.max`` ends a fork bomb at the kernel's own fork() instead of at the RSS watchdog.
  cgroup v1 (``memory`` and ``pids`` hierarchies, as on the course's machines) or v2 (one
  unified hierarchy with both controllers delegated).  Groups nest: a student's jail (its
  zygote) gets one group, each of its notebooks a child group inside it, so everything one
  student makes stays within ``--memory-mb``.
* ``CappedFolder``: a folder that is a tmpfs mount of a fixed size (``mount -t tmpfs -o
  size=...``), bound into the jail as /tmp or as the home.  A write past the cap fails with
  ENOSPC in the student's cell; its pages count in the memory cgroup of whoever wrote them.

Both need root (or a delegated cgroup).  Where they are unavailable, ``Cgroup.create`` and
``CappedFolder.create`` return an object whose ``.why`` says so and whose limits are not
enforced; the grader then falls back on RLIMIT_AS, the RSS watchdog and bubblewrap's own
``--size`` tmpfs (see autograde/README.md, "Bounds").
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "loraweek-grading"   # kernel_zygote.GRADING_CGROUP: the launcher looks for it

# Default caps, far above what a course notebook uses (measured: autograde/README.md, "Bounds")
TMP_MB = 1024          # the jail's /tmp (and /dev/shm), a tmpfs: RAM
HOME_MB = 1024         # the jail's home, a tmpfs: RAM
MAX_PROCESSES = 1024   # pids.max: processes *and* threads of one notebook (or one student's jail)
SCRATCH_MB = 2048      # the kernel's working folder (sandbox: a tmpfs, RAM)
INTERRUPT_GRACE_S = 10.0   # seconds a timed-out cell has to obey the interrupt (cell_guard.GuardedExecute)


@dataclass
class Limits:
    """What one notebook may use (``grade``'s options)."""
    memory_mb: int = 6144
    max_processes: int = MAX_PROCESSES
    tmp_mb: int = TMP_MB
    home_mb: int = HOME_MB
    scratch_mb: int = SCRATCH_MB


def _own_path(controller: str) -> str | None:
    """This process's cgroup path in `controller`'s v1 hierarchy ("" for v2's unified line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller == "" and controllers == "" and line.startswith("0::"):
            return path
        if controller and controller in controllers.split(","):
            return path
    return None


def _state(pid: int) -> str:
    """A process's state letter (R, S, D, Z, ...), "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _read_keyed(path: Path) -> dict[str, int]:
    """A cgroup "key value" file (memory.events, pids.events, memory.oom_control)."""
    out = {}
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
    except OSError:
        pass
    return out


@dataclass
class Cgroup:
    """One memory + pids control group (both directories are None when unavailable)."""

    memory_dir: Path | None = None
    pids_dir: Path | None = None
    version: int = 0            # 1, 2, or 0: none could be made
    why: str = ""               # why not, when version == 0
    memory_mb: int = 0
    max_processes: int = 0
    children: list = field(default_factory=list)

    @property
    def enforced(self) -> bool:
        return self.version != 0

    @classmethod
    def create(cls, name: str, memory_mb: int, max_processes: int, parent: "Cgroup | None" = None) -> "Cgroup":
        """A new group named `name` under `parent` (or under this process's own group)."""
        name = PREFIX + "-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] \
            + "-" + uuid.uuid4().hex[:6]
        if parent is not None and not parent.enforced:
            return cls(why=parent.why)
        try:
            if parent is not None:
                made = parent._make_child(name, memory_mb, max_processes)
            else:
                made = cls._make_v1(name, memory_mb, max_processes) or cls._make_v2(name, memory_mb, max_processes)
        except OSError as exc:
            return cls(why=f"cannot create a cgroup ({exc.strerror or exc})")
        if made is None:
            return cls(why="no writable cgroup memory and pids controllers (needs root, or a "
                           "delegated cgroup v2 with memory and pids)")
        if parent is not None:
            parent.children.append(made)
        return made

    @classmethod
    def _make_v1(cls, name, memory_mb, max_processes):
        mem_own, pids_own = _own_path("memory"), _own_path("pids")
        if mem_own is None or pids_own is None or not (CGROUP_ROOT / "memory").is_dir():
            return None
        mem = CGROUP_ROOT / "memory" / mem_own.lstrip("/") / name
        pids = CGROUP_ROOT / "pids" / pids_own.lstrip("/") / name
        if not os.access(mem.parent, os.W_OK) or not os.access(pids.parent, os.W_OK):
            return None
        return cls._configure(mem, pids, 1, memory_mb, max_processes)

    @classmethod
    def _make_v2(cls, name, memory_mb, max_processes):
        own = _own_path("")
        if own is None or not (CGROUP_ROOT / "cgroup.controllers").exists():
            return None
        base = CGROUP_ROOT / own.lstrip("/")
        enabled = (base / "cgroup.subtree_control").read_text().split() if (base / "cgroup.subtree_control").exists() else []
        if not {"memory", "pids"} <= set(enabled) or not os.access(base, os.W_OK):
            return None   # v2's "no internal processes" rule: we cannot enable them from inside
        d = base / name
        return cls._configure(d, d, 2, memory_mb, max_processes)

    def _make_child(self, name, memory_mb, max_processes):
        if self.version == 1:
            return self._configure(self.memory_dir / name, self.pids_dir / name, 1, memory_mb, max_processes)
        return self._configure(self.memory_dir / name, self.memory_dir / name, 2, memory_mb, max_processes)

    @classmethod
    def _configure(cls, mem: Path, pids: Path, version: int, memory_mb: int, max_processes: int):
        mem.mkdir()
        if pids != mem:
            pids.mkdir()
        g = cls(memory_dir=mem, pids_dir=pids, version=version, memory_mb=memory_mb,
                max_processes=max_processes)
        limit = str(memory_mb * 2**20)
        if version == 1:
            _write(mem / "memory.limit_in_bytes", limit)
            if (mem / "memory.memsw.limit_in_bytes").exists():   # no escape into swap
                try:
                    _write(mem / "memory.memsw.limit_in_bytes", limit)
                except OSError:
                    pass
        else:
            _write(mem / "memory.max", limit)
            if (mem / "memory.swap.max").exists():
                _write(mem / "memory.swap.max", "0")
            # v2's "no internal processes" rule: a group whose children have controllers holds no
            # processes itself, so its own processes live in a leaf group below it
            _write(mem / "cgroup.subtree_control", "+memory +pids")
            (mem / "leaf").mkdir()
        _write(pids / "pids.max", str(max_processes))
        return g

    def _leaves(self) -> list[Path]:
        """The folders whose cgroup.procs hold this group's own processes."""
        if self.version == 2:
            return [self.memory_dir / "leaf"]
        return list(dict.fromkeys([self.memory_dir, self.pids_dir]))

    # ---- membership ----------------------------------------------------------------------

    def procs_files(self) -> list[str]:
        """The files a process writes its PID into to join this group (both controllers)."""
        if not self.enforced:
            return []
        return [str(d / "cgroup.procs") for d in self._leaves()]

    def wrap(self, cmd: list[str], python: str) -> list[str]:
        """`cmd` started inside this group: a tiny shim joins it, then execs `cmd` (so nothing
        of the command ever runs outside the group)."""
        if not self.enforced:
            return cmd
        return [python, "-I", "-S", "-c", JOIN_AND_EXEC, os.pathsep.join(self.procs_files())] + cmd

    def add(self, pid: int) -> bool:
        ok = True
        for f in self.procs_files():
            try:
                _write(Path(f), str(pid))
            except OSError:
                ok = False
        return ok

    def pids(self) -> list[int]:
        if not self.enforced:
            return []
        out = set()
        for d in self._leaves():
            try:
                out |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        for child in self.children:
            out |= set(child.pids())
        return sorted(out)

    # ---- what happened -------------------------------------------------------------------

    def memory_mb_now(self) -> float:
        if not self.enforced:
            return 0.0
        f = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return _read_int(self.memory_dir / f) / 2**20

    def peak_memory_mb(self) -> float:
        if not self.enforced:
            return 0.0
        f = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return _read_int(self.memory_dir / f) / 2**20

    def processes_now(self) -> int:
        """Tasks (processes and threads) in the group now: pids.current."""
        return _read_int(self.pids_dir / "pids.current") if self.enforced else 0

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer ended in this group because of its limit."""
        if not self.enforced:
            return 0
        if self.version == 1:
            return _read_keyed(self.memory_dir / "memory.oom_control").get("oom_kill", 0)
        return _read_keyed(self.memory_dir / "memory.events").get("oom_kill", 0)

    def pids_refused(self) -> int:
        """fork()/clone() calls refused because the group was at pids.max."""
        return _read_keyed(self.pids_dir / "pids.events").get("max", 0) if self.enforced else 0

    # ---- the end -------------------------------------------------------------------------

    def kill_all_but(self, keep: set[int]) -> int:
        """SIGKILL every process of the group except `keep`, pass after pass, until only `keep`
        and the dead (zombies) are left: a fork bomb can refill a slot as soon as one is freed,
        but a kill takes microseconds and a fork of a kernel milliseconds.  (No SIGSTOP first: a
        stopped orphan would block the zygote supervisor's waitpid.)  Returns how many."""
        killed: set[int] = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = [pid for pid in self.pids() if pid not in keep and _state(pid) not in ("Z", "X", "")]
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            killed |= set(alive)
        return len(killed)

    def kill_all(self) -> None:
        """SIGKILL every process in the group (repeated: a fork bomb forks while we kill)."""
        self.kill_all_but(set())

    def remove(self) -> None:
        for child in reversed(self.children):
            child.remove()
        self.children = []
        if not self.enforced:
            return
        self.kill_all()
        dirs = ([self.memory_dir / "leaf"] if self.version == 2 else []) + [self.memory_dir, self.pids_dir]
        for d in dict.fromkeys(dirs):
            for _ in range(100):   # a killed process leaves the group a moment after SIGKILL
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.05)
        self.version = 0
        self.why = "removed"


# joins the cgroups named in argv[1] (os.pathsep-separated cgroup.procs files), then execs argv[2:]
JOIN_AND_EXEC = ("import os, sys\n"
                 "for p in sys.argv[1].split(os.pathsep):\n"
                 "    if p:\n"
                 "        with open(p, 'w') as f: f.write(str(os.getpid()))\n"
                 "os.execv(sys.argv[2], sys.argv[2:])")


@dataclass
class CappedFolder:
    """A folder with a size cap: a tmpfs mount of `cap_mb` MiB where we may mount (root), else a
    plain folder (``capped`` False; ``why`` says why)."""

    path: Path
    cap_mb: int
    capped: bool = False
    why: str = ""

    @classmethod
    def create(cls, path: Path, cap_mb: int) -> "CappedFolder":
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        folder = cls(path, cap_mb)
        if os.geteuid() != 0:
            folder.why = "not root: cannot mount a size-capped tmpfs"
            return folder
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={cap_mb}m,mode=0700,nosuid,nodev",
                            "tmpfs", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            folder.why = f"mount -t tmpfs failed: {(r.stderr or r.stdout).strip()[-200:]}"
        else:
            folder.capped = True
        return folder

    def used_mb(self) -> float:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return 0.0
        return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20

    def full(self) -> bool:
        """At (or within 1 MiB of) its cap: a write has most likely been refused."""
        return self.capped and self.used_mb() >= self.cap_mb - 1

    def release(self) -> None:
        if self.capped:
            # lazy: a process of the jail that is still dying may hold it for a moment
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.capped = False


def describe_mb(mb: float) -> str:
    """1024 -> '1 GiB', 512 -> '512 MiB' (how the caps are named in a row's reason)."""
    return f"{mb / 1024:g} GiB" if mb >= 1024 and mb % 256 == 0 else f"{mb:g} MiB"


def describe_bounds(limits: Limits, sandboxed: bool) -> dict[str, str]:
    """How each bound is enforced on this machine (probed: a real cgroup and a real capped
    folder are made and removed), for the start of a grading run and grading_run.json."""
    import tempfile

    cg = Cgroup.create("probe", limits.memory_mb, limits.max_processes)
    with tempfile.TemporaryDirectory(prefix="lwcap-") as d:
        folder = CappedFolder.create(Path(d) / "probe", 1)
        mounted, why_not = folder.capped, folder.why
        folder.release()
    if cg.enforced:
        memory = (f"{limits.memory_mb} MiB per notebook, cgroup v{cg.version} (RSS of all its processes "
                  "+ its tmpfs pages), and RLIMIT_AS")
        processes = f"{limits.max_processes} processes and threads per notebook (cgroup pids.max)"
    else:
        memory = f"{limits.memory_mb} MiB per notebook: RLIMIT_AS and the RSS watchdog ({cg.why})"
        processes = f"not bounded: no pids cgroup ({cg.why}); the RSS watchdog sums the tree"
    cg.remove()
    if mounted:
        tmp = f"{describe_mb(limits.tmp_mb)} (size-capped tmpfs, counted in the memory bound)"
        home = f"{describe_mb(limits.home_mb)} (size-capped tmpfs, counted in the memory bound)"
        work = f"{describe_mb(limits.scratch_mb)} (size-capped tmpfs, counted in the memory bound)"
    elif sandboxed:
        tmp = f"{describe_mb(limits.tmp_mb)} (bwrap --size tmpfs; {why_not})"
        home = f"{describe_mb(limits.home_mb)} (bwrap --size tmpfs; {why_not})"
        work = f"not bounded ({why_not})"
    else:
        tmp = f"not bounded: no sandbox and {why_not} (TMPDIR points to a private folder)"
        home = work = f"not bounded: no sandbox and {why_not}"
    return {"memory": memory, "processes": processes, "/tmp": tmp, "home": home, "working folder": work}
