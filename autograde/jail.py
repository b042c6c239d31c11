"""The kernel of a submission inside bubblewrap (`bwrap`): the "sandbox" isolation mode.

Only the Jupyter *kernel* (where student code runs) is jailed; nbgrader, the gradebook and the
instructor's notebooks stay outside.  Inside, the kernel sees:

* read-only: the system (/usr, /etc, ...), Python, the venv, the course package, the model
  cache (``loraweek.tiny_model.cache_root()``) and the other read-only caches it may load from;
* writable: its own scratch folder (nbgrader's autograded folder of this one notebook, also its
  working directory), a private home and a private /tmp, both thrown away afterwards;
* no network (``--unshare-net``; loopback still works, Day 5 serves on 127.0.0.1), its own PID
  namespace (it cannot signal the grader), and nothing else: no solutions/, no gradebook, no
  other submission.

The kernel talks to nbgrader over Unix-domain sockets (jupyter's ``ipc`` transport) in a
private runtime folder, because TCP on 127.0.0.1 does not cross network namespaces.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import List, Unicode

SANDBOX = "sandbox (bubblewrap)"
GUARD = "guard (no sandbox: fingerprint and restore)"
# read-only caches a notebook may load from, when they exist (all under the real home)
IGNORE_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
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
    from . import REPO_ROOT

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


def bwrap_argv(scratch: Path, runtime: Path, home: Path) -> list[str]:
    """The bubblewrap command line that precedes the kernel's own command."""
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
    a += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm",
          "--tmpfs", "/tmp"]
    real_home = str(Path.home())
    # the private home first: read-only paths under the real home (pyenv, caches) go on top
    a += ["--bind", str(home), real_home]
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
    extra_prefix = List(Unicode(), help="extra arguments (tests)").tag(config=True)

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
        return bwrap_argv(Path(self.scratch), runtime, Path(self.home)) + cmd
