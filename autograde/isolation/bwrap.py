"""The kernel of a submission inside bubblewrap (`bwrap`): the "sandbox" isolation mode.

Only the Jupyter *kernel* (where student code runs) is jailed; nbgrader, the gradebook and the
instructor's notebooks stay outside.  Inside, the kernel sees:

* read-only: the system (/usr, /etc, ...), Python, the venv, the course package, the model
  cache (``loraweek.models.tiny.cache_root()``) and the other read-only caches it may load from;
* writable: its own scratch folder (nbgrader's autograded folder of this one notebook, also its
  working directory), a private home and a private /tmp, both thrown away afterwards;
* no network (``--unshare-net``; loopback still works, Day 5 serves on 127.0.0.1), its own PID
  namespace (it cannot signal the grader), and nothing else: no solutions/, no gradebook, no
  other submission.

The kernel talks to nbgrader over Unix-domain sockets (jupyter's ``ipc`` transport) in a
private runtime folder, because TCP on 127.0.0.1 does not cross network namespaces.

By default (``StudentJail``) one jail holds all of one student's notebooks: a zygote in it
imports the libraries once and forks a kernel per notebook (kernel_zygote.py), each with its
own scratch and runtime folder.  The student's notebooks share the jail's home and /tmp; no
jail is ever shared between students.  ``--kernels fresh`` starts one jail per notebook.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode

from ..limits import HOME_MB, TMP_MB, CappedFolder, Cgroup, Limits

# read-only caches a notebook may load from, when they exist (all under the real home)
# bwrap starts with SIGINT ignored (see bwrap_argv) and with the kernel, not the grading worker
# beside it in the notebook's cgroup, first in line for the OOM killer
IGNORE_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                 "try: open('/proc/self/oom_score_adj', 'w').write('500')\n"
                 "except OSError: pass\n"
                 "os.execv(sys.argv[1], sys.argv[1:])")
HOME_CACHES = (".cache/huggingface", ".cache/torch", ".cache/ms-playwright", ".cache/loraweek")
CACHE_ENV = ("HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME", "NLTK_DATA", "PLAYWRIGHT_BROWSERS_PATH")


def _real(p) -> str:
    return os.path.realpath(str(p))


def readonly_paths() -> list[str]:
    """What a kernel may read besides the system: Python, the venv, the package, the caches."""
    from loraweek.cache import cache_root
    import loraweek

    paths = [sys.base_prefix, sys.prefix, os.path.dirname(_real(sys.executable)),
             str(Path(loraweek.__file__).resolve().parent.parent), str(cache_root())]
    home = Path.home()
    paths += [str(home / c) for c in HOME_CACHES]
    paths += [os.environ[v] for v in CACHE_ENV if os.environ.get(v)]
    # the grader's PYTHONPATH (a package copy, a benchmark's sitecustomize), never the repo
    # itself: the repo holds solutions/
    from .. import REPO_ROOT

    repo = _real(REPO_ROOT)
    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if p and not (_real(p) == repo or repo.startswith(_real(p) + os.sep)):
            paths.append(p)
    out = []
    for p in paths:
        for q in {os.path.abspath(p), _real(p)}:
            if os.path.exists(q) and q not in out:
                out.append(q)
    return out


def bwrap_argv(scratch: Path, runtime: Path, home: Path, tmp: Path | None = None,
               folders_capped: bool = False, tmp_mb: int = TMP_MB, home_mb: int = HOME_MB) -> list[str]:
    """The bubblewrap command line that precedes the kernel's own command.

    `home` and `tmp` are host folders bound as the jail's home and /tmp when `folders_capped`
    (size-capped tmpfs mounts made by the grader, limits.CappedFolder: the grader can see how
    full they are).  Otherwise both are tmpfs mounts that bwrap makes inside the jail with
    ``--size`` (capped all the same; the host folder `home` is then unused)."""
    exe = shutil.which("bwrap")
    if not exe:
        raise RuntimeError("bwrap not found (apt-get install bubblewrap)")
    # jupyter interrupts a cell (cell timeout) with SIGINT to the kernel's process group: bwrap
    # itself would die of it and take the kernel along, so it starts with SIGINT ignored (the
    # kernel installs its own handler while it runs a cell)
    a = [sys.executable, "-c", IGNORE_SIGINT, exe, "--die-with-parent", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-pid",
         "--unshare-cgroup-try", "--ro-bind", "/usr", "/usr"]
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    # /dev/shm is RAM too (torch's shared tensors, multiprocessing): capped like /tmp
    a += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
          "--size", str(tmp_mb * 2**20), "--tmpfs", "/dev/shm"]
    a += ["--bind", str(tmp), "/tmp"] if folders_capped and tmp is not None else \
         ["--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp"]
    real_home = str(Path.home())
    # the private home first: read-only paths under the real home (pyenv, caches) go on top
    a += ["--bind", str(home), real_home] if folders_capped else \
         ["--size", str(home_mb * 2**20), "--tmpfs", real_home]
    for p in readonly_paths():
        a += ["--ro-bind", p, p]
    a += ["--bind", str(runtime), str(runtime), "--bind", str(scratch), str(scratch),
          "--chdir", str(scratch), "--setenv", "HOME", real_home, "--setenv", "TMPDIR", "/tmp",
          "--setenv", "MPLCONFIGDIR", os.path.join(real_home, ".config", "matplotlib"),
          # the grader's PID is invisible from the kernel's PID namespace: without this the
          # kernel's parent poller would think its parent died and quit (--die-with-parent does it)
          "--unsetenv", "JPY_PARENT_PID"]
    return a + ["--"]


@lru_cache(maxsize=1)
def probe() -> tuple[bool, str]:
    """(can the sandbox start here, why not).  Starts a real jailed Python once."""
    exe = shutil.which("bwrap")
    if not exe:
        return False, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lwprobe-") as d:
        dirs = [Path(d) / n for n in ("scratch", "run", "home")]
        for x in dirs:
            x.mkdir()
        try:
            cmd = bwrap_argv(*dirs) + [sys.executable, "-c", "import loraweek, socket; "
                                       "s = socket.socket(); s.bind(('127.0.0.1', 0)); print('ok')"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except Exception as exc:
            return False, f"bwrap could not start ({exc})"
        if r.returncode != 0 or "ok" not in r.stdout:
            return False, f"bwrap could not start: {(r.stderr or r.stdout).strip()[-300:]}"
    return True, ""


class JailedKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with the kernel command prefixed by bubblewrap."""

    scratch = Unicode("", help="the kernel's working folder, writable").tag(config=True)
    home = Unicode("", help="host folder mounted as the kernel's private home").tag(config=True)
    tmp = Unicode("", help="host folder mounted as the kernel's /tmp").tag(config=True)
    folders_capped = Bool(False, help="home and tmp are size-capped tmpfs mounts (else bwrap makes "
                                      "capped ones inside the jail)").tag(config=True)
    tmp_mb = Integer(TMP_MB, help="size cap of /tmp and /dev/shm, MiB").tag(config=True)
    home_mb = Integer(HOME_MB, help="size cap of the home folder, MiB").tag(config=True)
    extra_prefix = List(Unicode(), help="extra arguments (tests)").tag(config=True)
    zygote_socket = Unicode("", help="fork the kernel from this student's zygote (kernel_zygote.py), "
                                     "already inside its jail, instead of starting a jailed one").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # the connection file and the ipc sockets in the grader's private runtime folder (the
        # default would be a temporary file in /tmp, and binding /tmp would undo the private /tmp)
        from uuid import uuid4

        from jupyter_core.paths import jupyter_runtime_dir

        if not self.connection_file:
            os.makedirs(jupyter_runtime_dir(), exist_ok=True)
            self.connection_file = os.path.join(jupyter_runtime_dir(), f"k-{uuid4().hex[:8]}.json")
        self.ip = os.path.splitext(self.connection_file)[0] + "-ipc"

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        runtime = Path(self.connection_file).resolve().parent
        if str(runtime) in ("/", "/tmp", str(Path.home())):
            raise RuntimeError(f"refusing to share {runtime} with a jailed kernel (set JUPYTER_RUNTIME_DIR)")
        if self.zygote_socket:
            return [sys.executable, "-I", "-S", str(ZYGOTE_FILE), "launch", self.zygote_socket,
                    str(runtime / KERNEL_PID_FILE), "--"] + cmd
        return bwrap_argv(Path(self.scratch), runtime, Path(self.home), Path(self.tmp) if self.tmp else None,
                          self.folders_capped, self.tmp_mb, self.home_mb) + cmd


# ---- forked kernels (kernel_zygote.py) -----------------------------------------------------

ZYGOTE_FILE = Path(__file__).resolve().parent.parent / "kernel_zygote.py"
# What every notebook of the week imports: a kernel forked after these starts in well under a
# second instead of ~7 CPU-seconds.  Only libraries, never the course package or a notebook's code.
ZYGOTE_PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "torch", "transformers.modeling_utils",
                  "transformers.models.auto.modeling_auto", "transformers.models.qwen2.modeling_qwen2",
                  "transformers.tokenization_utils_base", "peft", "bitsandbytes", "matplotlib.pyplot")
KERNEL_PID_FILE = "kernel.pid"   # written by the launcher into the notebook's runtime folder


class StudentJail:
    """One student's bubblewrap jail with a zygote in it: private home, /tmp, a scratch folder
    and a runtime folder per notebook; started on first use, thrown away after the last."""

    def __init__(self, student: str, notebooks, env: dict, log_path: Path, preload=ZYGOTE_PRELOAD,
                 limits: Limits | None = None):
        import tempfile

        self.student, self.env, self.log_path, self.preload = student, env, log_path, tuple(preload)
        self.limits = limits or Limits()
        self.start_s: list[float] = []   # how long each start of the zygote took (its imports)
        self.root = Path(tempfile.mkdtemp(prefix="lwz-"))
        self.home, self.scratch_root, self.runtime_root = (self.root / n for n in ("home", "scratch", "run"))
        for nb in notebooks:
            (self.scratch_root / nb).mkdir(parents=True)
            (self.runtime_root / nb).mkdir(parents=True)
        # the jail's home and /tmp: size-capped tmpfs mounts shared by the student's notebooks
        self.home_folder = CappedFolder.create(self.home, self.limits.home_mb)
        self.tmp_folder = CappedFolder.create(self.root / "tmp", self.limits.tmp_mb)
        # the notebooks' working folders (made below it after the mount)
        self.scratch_folder = CappedFolder.create(self.scratch_root, self.limits.scratch_mb)
        for nb in notebooks:
            (self.scratch_root / nb).mkdir(parents=True, exist_ok=True)
        # everything the student's jail makes (zygote, kernels, tmpfs pages) within one bound;
        # each notebook gets a child group with the same bound (grade.grade_one)
        self.cgroup = Cgroup.create(f"student-{student}", self.limits.memory_mb, self.limits.max_processes)
        self.socket = str(self.runtime_root / "zygote.sock")
        self.proc: subprocess.Popen | None = None

    @property
    def folders_capped(self) -> bool:
        return self.home_folder.capped and self.tmp_folder.capped

    def scratch(self, notebook: str) -> Path:
        return self.scratch_root / notebook

    def runtime(self, notebook: str) -> Path:
        return self.runtime_root / notebook

    def ensure_running(self, timeout: float = 300) -> None:
        """Start the zygote if it is not running (first notebook, or a kernel killed it) and wait
        until it serves; RuntimeError with its log's tail if it cannot."""
        if self.proc is not None and self.proc.poll() is None and os.path.exists(self.socket):
            return
        self.stop(remove=False)
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        cmd = self.cgroup.wrap(bwrap_argv(
            self.scratch_root, self.runtime_root, self.home, self.tmp_folder.path, self.folders_capped,
            self.limits.tmp_mb, self.limits.home_mb) + [
            sys.executable, "-c", ZYGOTE_FILE.read_text(), "serve", self.socket, *self.preload], sys.executable)
        import time

        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = t0 + timeout
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(remove=False)
                tail = Path(self.log_path).read_text(errors="replace")[-800:]
                raise RuntimeError(f"the kernel zygote of {self.student} did not start: {tail}")
            time.sleep(0.05)
        self.start_s.append(round(time.monotonic() - t0, 1))

    def stop(self, remove: bool = True) -> None:
        import signal

        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None
        if remove:
            self.cgroup.remove()
            for folder in (self.home_folder, self.tmp_folder, self.scratch_folder):
                folder.release()
            shutil.rmtree(self.root, ignore_errors=True)


class StudentJails:
    """The jails of a grading run: one per student, alive while any of its notebooks grades."""

    def __init__(self, todo, env: dict, log_dir: Path, limits: Limits | None = None):
        import threading

        self.limits = limits

        self.notebooks: dict[str, list[str]] = {}
        for student, nb in todo:
            self.notebooks.setdefault(student, []).append(nb)
        self.left = {s: len(nbs) for s, nbs in self.notebooks.items()}
        self.env, self.log_dir = env, log_dir
        self.jails: dict[str, StudentJail] = {}
        self.start_s: list[float] = []   # every zygote start of the run, in seconds
        self.lock = threading.Lock()
        self.student_locks = {s: threading.Lock() for s in self.notebooks}

    def acquire(self, student: str) -> StudentJail:
        with self.lock:
            jail = self.jails.get(student)
            if jail is None:
                jail = self.jails[student] = StudentJail(student, self.notebooks[student], self.env,
                                                         self.log_dir / f"{student}.zygote.log",
                                                         limits=self.limits)
        with self.student_locks[student]:
            jail.ensure_running()
        return jail

    def release(self, student: str) -> None:
        with self.lock:
            self.left[student] -= 1
            jail = self.jails.pop(student) if self.left[student] == 0 else None
        if jail is not None:
            self._stop(jail)

    def close(self) -> None:
        with self.lock:
            jails, self.jails = list(self.jails.values()), {}
        for jail in jails:
            self._stop(jail)

    def _stop(self, jail: StudentJail) -> None:
        jail.stop()
        with self.lock:
            self.start_s.extend(jail.start_s)
