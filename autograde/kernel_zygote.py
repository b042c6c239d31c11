"""Forked kernels: one student's notebooks start from a process that already imported the libraries.

A fresh Jupyter kernel spends about 7 CPU-seconds importing torch, transformers, peft,
bitsandbytes and matplotlib before the notebook's first real cell runs; a week has five
notebooks.  Like multiprocessing's forkserver, a *zygote* imports them once, inside the
student's bubblewrap jail, and forks a kernel for each of that student's notebooks; the fork
shares the imported modules copy-on-write and starts in a fraction of a second.

Isolation is per student: a student's kernels share the jail (home, /tmp, the zygote), never
with another student.  Each kernel is a fresh fork of the zygote (never of another kernel),
with its own working folder, environment, memory bound and random seeds.

This file is stdlib-only and has two roles:

* ``serve SOCKET MODULE...`` runs *inside* the jail (the grader passes this file's source with
  ``python -c``: the repo is not visible there).  It imports the modules, listens on SOCKET and,
  per connection, forks a supervisor that forks the kernel, forwards signals to it and reports
  its exit status.
* ``launch SOCKET PIDFILE -- python -m ipykernel_launcher -f CONN`` runs *outside* the jail as
  the kernel command jupyter_client starts.  It hands its stdin/stdout/stderr, working folder
  and environment to the zygote, writes the kernel's host PID to PIDFILE (the grader's time and
  memory watchdog follows it), forwards interrupts and ends with the kernel's exit status.  If
  it is killed, the zygote kills the kernel.
"""
import json
import os
import select
import signal
import socket
import sys
import time

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
JAIL_ENV = ("HOME", "TMPDIR", "MPLCONFIGDIR")   # set by bwrap for the jail: they win over the request's
READY_TIMEOUT_S = 180                           # the zygote's imports, on a loaded machine


def _send(conn, obj):
    conn.sendall(json.dumps(obj).encode() + b"\n")


def _lines(conn):
    """Yield JSON messages from `conn` (one per line) until EOF."""
    buf = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)


# ---- inside the jail -------------------------------------------------------------------------

def _become_kernel(request, fds):
    """In the forked child: take over the client's stdio, folder, environment and limits, then run
    the kernel's module as ``python -m`` would."""
    import random
    import resource
    import runpy

    for sig in FORWARDED + (signal.SIGCHLD,):
        signal.signal(sig, signal.SIG_DFL)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    jail = {k: os.environ[k] for k in JAIL_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(jail)
    os.environ.pop("JPY_PARENT_PID", None)   # the grader's PID is not visible from the jail
    os.chdir(request["cwd"])
    if request.get("rlimit_as"):
        limit = int(request["rlimit_as"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # what a fresh process would have: seeds from the OS, not the zygote's copied state
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    argv = request["argv"]
    if len(argv) < 3 or argv[1] != "-m":
        raise SystemExit(f"zygote: expected 'python -m MODULE ...', got {argv!r}")
    sys.argv = [argv[2]] + list(argv[3:])
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


def _supervise(conn):
    """One connection: receive the request, fork the kernel, relay signals, report the exit."""
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while not msg.endswith(b"\n"):   # a long environment may come in more than one piece
        more = conn.recv(1 << 16)
        if not more:
            raise SystemExit("zygote: the launcher left before its request was complete")
        msg += more
    request = json.loads(msg.decode())
    # Whatever the kernel starts -- even a double-forked daemon -- is re-parented to this
    # supervisor, not to the jail's init, so it ends with the notebook instead of living on to
    # watch the student's next notebook.
    _set_child_subreaper()
    pid = os.fork()
    if pid == 0:
        conn.close()
        code = 1
        try:
            _become_kernel(request, fds)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code not in (None, 0) and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for fd in fds:
        os.close(fd)
    _send(conn, {"pid": pid, "pidns": os.readlink("/proc/self/ns/pid")})
    conn.setblocking(False)
    buf = b""
    while True:
        status = _reap_until(pid)
        if status is not None:
            _kill_descendants()
            try:
                conn.setblocking(True)
                _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass
            return
        ready, _, _ = select.select([conn], [], [], 0.05)
        if not ready:
            continue
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            chunk = b""
        if not chunk:   # the launcher is gone (killed by the grader): so is its kernel
            os.kill(pid, signal.SIGKILL)
            _kill_descendants()
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            sig = json.loads(line).get("signal")
            if sig:
                try:
                    os.kill(pid, int(sig))
                except ProcessLookupError:
                    pass


def _set_child_subreaper():
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _reap_until(pid):
    """Reap any ended child (orphans come to us); the kernel's wait status once it has ended."""
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if not done:
            return None
        if done == pid:
            return status


def _kill_descendants():
    """SIGKILL every process left under this supervisor, orphans included, until none is left."""
    me = os.getpid()
    while True:
        try:
            with open(f"/proc/{me}/task/{me}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            children = []
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def serve(path, modules):
    import importlib
    import warnings

    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # import-time warnings show again in each kernel that imports
        for name in modules:
            importlib.import_module(name)
    # The supervisors are reaped as they end; their kernels are theirs to reap.
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".tmp"
    server.bind(tmp)
    server.listen(16)
    os.rename(tmp, path)   # the launcher connects only once everything is imported
    print(f"zygote: {len(modules)} modules imported in {time.monotonic() - t0:.1f} s, serving {path}",
          file=sys.stderr, flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        pid = os.fork()
        if pid == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _supervise(conn)
            finally:
                os._exit(0)
        conn.close()


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


# ---- outside the jail ------------------------------------------------------------------------

def host_pid(pidns: str, pid: int) -> int | None:
    """The PID, as the host sees it, of process `pid` of PID namespace `pidns`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != pidns:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == pid:
                            return int(entry)
                        break
        except OSError:
            continue
    return None


GRADING_CGROUP = "loraweek-grading"   # autograde.limits.PREFIX: groups the grader made


def join_grading_cgroups(pid):
    """Move the forked kernel into this launcher's grading cgroups (the notebook's memory and
    pids bounds, autograde/limits.py): it was forked by the zygote, so it starts in the zygote's
    group.  This runs before the kernel is sent any cell.  Also make the kernel, not the grading
    worker beside it, the one the OOM killer picks first."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if GRADING_CGROUP not in path:
            continue
        if controllers:
            dirs = [f"/sys/fs/cgroup/{c}{path}" for c in controllers.split(",") if c in ("memory", "pids")]
        else:
            dirs = [f"/sys/fs/cgroup{path}"]
        for d in dirs:
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("500")
    except OSError:
        pass


def launch(path, pidfile, argv):
    deadline = time.monotonic() + READY_TIMEOUT_S
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            conn.connect(path)
            break
        except ConnectionRefusedError:   # the socket exists only once it listens: the zygote died
            raise SystemExit(f"zygote: {path} refuses connections (the zygote has ended)")
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise SystemExit(f"zygote: nothing serves {path} after {READY_TIMEOUT_S} s")
            time.sleep(0.05)
    import resource

    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
               "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0] if
               resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY else None}
    socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
    messages = _lines(conn)
    started = next(messages, None)
    if started is None:
        raise SystemExit("zygote: the kernel could not be started (see the zygote's log)")
    pid = host_pid(started["pidns"], started["pid"])
    if pid is not None:
        join_grading_cgroups(pid)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(pid))
        os.rename(pidfile + ".tmp", pidfile)

    def forward(signum, _frame):
        try:
            _send(conn, {"signal": int(signum)})
        except OSError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for msg in messages:
        if "exit" in msg:
            code = msg["exit"]
            return code if code >= 0 else 128 - code
    return 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "serve":
        serve(argv[1], argv[2:])
    elif len(argv) >= 4 and argv[0] == "launch" and argv[3] == "--":
        sys.exit(launch(argv[1], argv[2], argv[4:]))
    else:
        sys.exit("usage: kernel_zygote.py serve SOCKET MODULE... | launch SOCKET PIDFILE -- KERNEL-ARGV...")


if __name__ == "__main__":
    main(sys.argv[1:])
