"""GuardedExecute: nbgrader's Execute preprocessor with a guard around the test cells.

nbgrader runs a submission's cells and its test cells in one kernel, so student code can
redefine what the tests use.  Before every test cell the guard (running in the kernel, out of
the notebook's sight) puts back:

* functions and classes of the course package (`loraweek.*`), numpy, torch, math, importlib,
  and the builtins, snapshotted when the kernel started, before any student code ran (a
  course-package module imported later is snapshotted by an import hook right after it runs,
  before the importing cell gets it);
* entries of `sys.modules` of those packages (so `importlib.import_module` in a hidden test
  returns the genuine module);
* IPython's code transformers and the shell's run/traceback methods (which could rewrite or
  silence a test cell), `sys.settrace`;
* names the test cell reads that an *instructor* cell bound to a function, class or module
  (e.g. a self-check helper `check_equal`): an instructor cell is one whose source is exactly
  a non-solution cell of the instructor notebook.

Each restoration is reported and the notebook gets the status "tampered".  `os._exit` raises
instead of killing the kernel when student code calls it.

What runs in the kernel is cell_guard_kernel.py, sent as its source text (`kernel_code`); this
file is the grader's side: when to call it, and what to do with a kernel that stops answering.
"""
from __future__ import annotations

import ast
import json
import re
from functools import lru_cache
from pathlib import Path

from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, List, Unicode

from .limits import INTERRUPT_GRACE_S

STUCK_ENAME = "CellTimeoutError"   # what integrity.score_notebook counts as a timed-out cell


class StuckKernel(Exception):
    """The kernel did not answer a cell-timeout interrupt (e.g. SIGINT ignored by the student)."""


KERNEL_FILE = Path(__file__).resolve().with_name("cell_guard_kernel.py")


@lru_cache(maxsize=1)
def _kernel_functions() -> tuple[str, tuple[str, ...]]:
    """cell_guard_kernel.py without its docstring (a docstring run as a cell would become the
    notebook's ``__doc__``), and the names of the functions it defines (all it may define)."""
    source = KERNEL_FILE.read_text(encoding="utf-8")
    tree = ast.parse(source)
    body = tree.body
    skip = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip, body = body[0].end_lineno, body[1:]
    if not all(isinstance(node, ast.FunctionDef) for node in body):
        raise RuntimeError(f"{KERNEL_FILE.name} may define only functions: it runs in the notebook's namespace")
    return "\n".join(source.splitlines()[skip:]).lstrip("\n") + "\n", tuple(node.name for node in body)


def kernel_code(token: str, policy: str) -> str:
    """The silent cell that installs the guard in a kernel: the functions of cell_guard_kernel.py,
    a call of its `_lw_install` with the run's values as one JSON text (given as a Python string
    literal: no value is formatted into code), and the functions' names deleted again.  `token`
    names the guard function (``builtins._lw_guard_<token>``), `policy` is the audit hook's JSON."""
    functions, names = _kernel_functions()
    config = json.dumps({"token": token, "policy": policy})
    return f"{functions}\n_lw_install({config!r})\ndel {', '.join(names)}\n"


def names_read(source: str) -> list[str]:
    """Names a cell reads (loads), to restore instructor helpers a test cell uses."""
    try:
        tree = ast.parse(source)
        return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    except SyntaxError:
        return sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source)))


def names_bound(source: str) -> set[str]:
    """Top-level names a (solution) cell defines: functions, classes, assignments, imports."""
    try:
        tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return set()
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                out |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


class GuardedExecute(Execute):
    """Execute with the guard described in the module docstring."""

    trusted_sources = List(Unicode(), help="sources of instructor cells").tag(config=True)
    trusted_notebook = Unicode("", help="instructor notebook whose non-solution code cells are trusted").tag(config=True)
    report_path = Unicode("", help="where to write the guard's findings (JSON)").tag(config=True)
    policy = Unicode("{}", help="JSON: scratch / secret / protected / cache paths for the audit hook").tag(config=True)
    kernel_cwd = Unicode("", help="the kernel's working folder (a scratch folder away from the course)").tag(config=True)
    interrupt_grace = Float(INTERRUPT_GRACE_S, help="seconds a timed-out cell has to answer the interrupt before "
                                       "the kernel is stopped and the rest of the notebook is not run").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        import secrets
        self._token = secrets.token_hex(8)
        self._installed = False
        self._stuck_at = None   # the cell where the kernel stopped answering, once it has
        self._died_at = None    # the cell where the kernel died, once it has
        self.findings = []
        self._trusted = set(s.strip() for s in self.trusted_sources)
        self._answer_names = set()  # names the exercises define: the student's to (re)define
        if self.trusted_notebook:
            import nbformat
            src = nbformat.read(self.trusted_notebook, as_version=4)
            for c in src.cells:
                meta = c.metadata.get("nbgrader", {})
                if c.cell_type == "code" and not meta.get("solution"):
                    self._trusted.add(c.source.strip())
                elif c.cell_type == "code":
                    self._answer_names |= names_bound(c.source)
        meta = (resources or {}).setdefault("metadata", {}) if resources is not None else None
        old_path = meta.get("path") if meta is not None else None
        if self.kernel_cwd and meta is not None:
            # the kernel starts in its scratch folder, not next to the course's source and
            # gradebook; the files nbgrader placed beside the notebook (data files) go with it
            import shutil

            if old_path and Path(old_path).is_dir():
                for f in Path(old_path).rglob("*"):
                    if f.is_file() and f.suffix != ".ipynb":
                        dest = Path(self.kernel_cwd) / f.relative_to(old_path)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(f, dest)
            meta["path"] = self.kernel_cwd
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self.kernel_cwd and meta is not None:
                meta["path"] = old_path
            if self.report_path:
                with open(self.report_path, "w") as f:
                    json.dump({"findings": self.findings, "guard_installed": self._installed,
                               "stuck_at": self._stuck_at, "died_at": self._died_at}, f)

    async def _guard(self, expression: str):
        msg_id = self.kc.execute("", silent=True, store_history=False,
                                 user_expressions={"r": expression})
        reply = await self.async_wait_for_reply(msg_id)
        try:
            r = reply["content"]["user_expressions"]["r"]
            if r.get("status") != "ok":
                return None
            return json.loads(ast.literal_eval(r["data"]["text/plain"]))
        except Exception:
            return None

    async def _run(self, code: str):
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        reply = await self.async_wait_for_reply(msg_id)
        ok = bool(reply) and reply["content"].get("status") == "ok"
        if not ok:
            self.log.warning("guard: %s", reply and {k: reply["content"].get(k) for k in ("ename", "evalue")})
        return ok

    async def _async_handle_timeout(self, timeout, cell=None):
        """nbclient interrupts a timed-out cell and goes on with the next one; a kernel that ignores
        SIGINT would then stay busy, and every later cell (and the whole notebook) would time out
        behind it, losing the points already earned.  So: interrupt, give the kernel
        `interrupt_grace` seconds to answer the interrupted request, else raise StuckKernel."""
        from queue import Empty

        reply = await super()._async_handle_timeout(timeout, cell)
        try:   # the only request in flight is the interrupted one: its reply is the next message
            await self.kc.shell_channel.get_msg(timeout=self.interrupt_grace)
        except Empty:
            raise StuckKernel(f"no answer {self.interrupt_grace:g} s after the interrupt") from None
        return reply

    def _end_here(self, cell, cell_index, ename, msg):
        """The kernel is gone (stopped or dead) at this cell: the cell gets an error output that
        says so, and the cells below it stay unexecuted (they score 0); what ran above keeps its
        points."""
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"] + [
            NotebookNode(output_type="error", ename=ename, evalue=msg, traceback=[msg])]
        if cell.get("execution_count") is None:
            cell.execution_count = (self.code_cells_executed or 1)

    async def _stop_stuck_kernel(self, cell, cell_index):
        """Grade what ran: the stuck cell gets a timeout error, the kernel is killed (with
        everything it started), and the cells below it are left unexecuted (they score 0)."""
        where = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {cell_index + 1}"
        self._stuck_at = where
        msg = (f"{where} ran longer than {self.timeout} s and did not stop when interrupted: the "
               "kernel was stopped there, and the cells below it were not run")
        self._end_here(cell, cell_index, STUCK_ENAME, msg)
        try:
            await self.km.shutdown_kernel(now=True)
        except Exception as exc:  # already dead: nothing more to stop
            self.log.warning("stopping the stuck kernel: %s", exc)
        return cell

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if self._stuck_at is not None or self._died_at is not None:   # no kernel any more
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            return cell
        try:
            return await self._guarded_execute_cell(cell, cell_index, execution_count, store_history)
        except StuckKernel:
            return await self._stop_stuck_kernel(cell, cell_index)
        except DeadKernelError:
            # killed (the OOM killer, a signal, a segfault): without this nbgrader gives up on the
            # whole notebook and every test scores 0, the ones that had passed included
            self._died_at = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {cell_index + 1}"
            self._end_here(cell, cell_index, "DeadKernelError",
                           f"the kernel died while running {self._died_at}; the cells below it were not run")
            return cell

    async def _guarded_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        fn = f"_lw_guard_{self._token}"
        if not self._installed:
            self._installed = bool(await self._run(kernel_code(self._token, self.policy)))
        meta = cell.metadata.get("nbgrader", {})
        is_test = bool(meta.get("grade")) and not meta.get("solution")
        trusted = cell.source.strip() in self._trusted and not meta.get("solution")
        if self._installed and is_test:
            names = [n for n in names_read(cell.source) if n not in self._answer_names]
            found = await self._guard(f"{fn}('pre_test', {names!r})")
            if found is None:
                self.findings.append(f"the grading guard was removed before {meta.get('grade_id')}")
            else:
                self.findings.extend(f"before {meta.get('grade_id')}: {f}" for f in found)
        if self._installed and trusted:
            await self._guard(f"{fn}('pre')")
        result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._installed:  # what this cell tried to read or write where it must not
            where = meta.get("grade_id") or f"cell {cell_index + 1}"
            found = await self._guard(f"{fn}('audit')")
            self.findings.extend(f"{where}: {f}" for f in found or [])
        if self._installed and trusted:
            await self._guard(f"{fn}('post_trusted')")
        return result

    execute_cell = run_sync(async_execute_cell)
