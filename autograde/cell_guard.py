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
"""
from __future__ import annotations

import ast
import json
import re

from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, List, Unicode

from .limits import INTERRUPT_GRACE_S

STUCK_ENAME = "CellTimeoutError"   # what integrity.score_notebook counts as a timed-out cell


class StuckKernel(Exception):
    """The kernel did not answer a cell-timeout interrupt (e.g. SIGINT ignored by the student)."""

KERNEL_CODE = r'''
def _lw_make_audit():
    # A Python audit hook (PEP 578; it cannot be removed once added) that notes every attempt
    # to write where a submission must not (the course package, the venv, the model cache's
    # existing files, start-up files, the grading folder) and every read of the grading folder
    # or the instructor's notebooks.  Notes, not blocks: the sandbox (or the fingerprint guard)
    # is what stops the write; this says which cell tried.
    import json, os, sys
    P = json.loads(%(policy)r)
    sep = os.sep
    norm = lambda xs: tuple(os.path.realpath(x) for x in xs if x)
    scratch, secret = norm(P.get("scratch", [])), norm(P.get("secret", []))
    protected, cache = norm(P.get("protected", [])), norm(P.get("cache", []))
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    READS = {"os.listdir", "os.scandir"}
    WRITES = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
              "os.utime", "shutil.rmtree"}
    PAIRS = {"os.rename", "os.symlink", "os.link", "shutil.copyfile", "shutil.copytree",
             "shutil.move"}
    STARTUP = (sep + ".ipython" + sep, sep + ".jupyter" + sep, sep + ".config" + sep + "ipython",
               sep + ".local" + sep + "lib" + sep)
    found, busy = [], [False]

    def under(p, roots):
        return any(p == r or p.startswith(r + sep) for r in roots)

    def note(msg):
        if msg not in found and len(found) < 20:
            found.append(msg)

    def path_of(x):
        if isinstance(x, int) or x is None:
            return None
        return os.path.realpath(os.path.abspath(os.fsdecode(x)))

    def check(x, write, mkdir=False):
        p = path_of(x)
        if p is None or under(p, scratch):
            return
        if under(p, secret):
            note(("tried to write " if write else "tried to read ") + p)
        elif not write:
            return
        elif p.endswith(".pth") or os.path.basename(p) in ("sitecustomize.py", "usercustomize.py") \
                or any(s in p for s in STARTUP):
            note("tried to plant a start-up file: " + p)
        elif under(p, protected) or (under(p, cache) and os.path.lexists(p) and not mkdir):
            # (mkdir of an existing cache folder, as in Path.mkdir(exist_ok=True), changes nothing)
            note("tried to change " + p)

    def hook(event, args):
        if busy[0] or not (event == "open" or event in READS or event in WRITES or event in PAIRS):
            return
        busy[0] = True
        try:
            if event == "open":
                mode, flags = args[1] or "", args[2] or 0
                check(args[0], any(c in str(mode) for c in "wax+") or bool(flags & WRITE))
            elif event in READS:
                check(args[0] if args else ".", False)
            elif event in WRITES:
                check(args[0], True, mkdir=event == "os.mkdir")
            else:
                check(args[0], False)
                check(args[1], True)
        except Exception:
            pass
        finally:
            busy[0] = False

    sys.addaudithook(hook)
    return found


def _lw_make_guard():
    import builtins, importlib, json, os, pkgutil, sys, threading, types
    WATCH = ("loraweek", "numpy", "torch", "math", "importlib", "builtins", "json", "re",
             "functools", "operator", "collections", "unittest")
    for _name in ("numpy", "numpy.testing", "math", "torch", "torch.nn", "torch.nn.functional",
                  "torch.testing", "loraweek"):
        try:
            importlib.import_module(_name)
        except Exception:
            pass

    def watched(name):
        return name.split(".")[0] in WATCH and (name.split(".")[0] != "torch" or name in (
            "torch", "torch.nn", "torch.nn.functional", "torch.testing"))

    def important(v):
        return isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType,
                              types.MethodType, staticmethod, classmethod, property))

    IGNORE_BUILTINS = {"exit", "quit", "get_ipython", "display", "_", "__", "___", "__IPYTHON__",
                       "__builtins__", "_ih", "_oh", "_dh", "In", "Out", "input", "raw_input"}
    site_dirs = tuple(p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p
                                                   or p.startswith(sys.base_prefix) or p.startswith(sys.prefix)))
    here = os.getcwd()

    def library_made(v):
        """True for a function defined in an installed library module (torch, transformers...)
        -- libraries rebind their own names lazily, e.g. torch._dynamo wraps torch.manual_seed.
        Student code defines things in __main__, in no module, or in files next to the notebook."""
        if v is None:
            return False
        m = getattr(v, "__module__", None)
        if not isinstance(m, str) or m in ("__main__", "builtins") or m not in sys.modules:
            return False
        f = getattr(sys.modules[m], "__file__", None) or ""
        return f.startswith(site_dirs) and not f.startswith(here)

    modules = {}      # name -> (module, {attr: value})
    classes = {}      # (module name, class name) -> (class, {attr: value})

    def snap(name, mod):
        attrs = {k: v for k, v in vars(mod).items() if important(v)}
        if name == "builtins":
            attrs = {k: v for k, v in attrs.items() if k not in IGNORE_BUILTINS}
        modules[name] = (mod, attrs)
        if name.startswith("loraweek"):
            for k, v in attrs.items():
                if isinstance(v, type) and getattr(v, "__module__", "") == name:
                    classes[(name, k)] = (v, {a: b for a, b in vars(v).items() if important(b) or callable(b)})

    for _n, _m in list(sys.modules.items()):
        if isinstance(_m, types.ModuleType) and watched(_n):
            snap(_n, _m)

    # Course-package modules are snapshotted when first imported, right after they run and
    # before the importer gets them (importing all of them up front cost seconds per notebook).
    class SnapLoader:
        def __init__(self, inner, name):
            self._inner, self._name = inner, name

        def __getattr__(self, k):
            return getattr(self._inner, k)

        def create_module(self, spec):
            return self._inner.create_module(spec)

        def exec_module(self, module):
            self._inner.exec_module(module)
            snap(self._name, module)

    class SnapFinder:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] != "loraweek" or name in modules:
                return None
            for f in list(sys.meta_path):
                if f is self or not hasattr(f, "find_spec"):
                    continue
                spec = f.find_spec(name, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = SnapLoader(spec.loader, name)
                    return spec
            return None

    finder = SnapFinder()
    sys.meta_path.insert(0, finder)

    shell = get_ipython()
    SHELL_METHODS = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
                     "transform_ast", "showtraceback", "_showtraceback", "should_run_async",
                     "showsyntaxerror", "ex", "ev")
    shell_cls = {}
    for _k in SHELL_METHODS:
        for _c in type(shell).__mro__:
            if _k in vars(_c):
                shell_cls[(_c, _k)] = vars(_c)[_k]
    shell_inst = {k: vars(shell)[k] for k in SHELL_METHODS if k in vars(shell)}
    tm = shell.input_transformer_manager
    lists = []  # (owner, attribute, the list object, its items)
    for _o, _k in ((tm, "cleanup_transforms"), (tm, "line_transforms"), (tm, "token_transformers"),
                   (shell, "input_transformers_post"), (shell, "ast_transformers")):
        _v = getattr(_o, _k, None)
        if isinstance(_v, list):
            lists.append((_o, _k, _v, list(_v)))
    pre_events = {e: list(shell.events.callbacks.get(e, [])) for e in ("pre_execute", "pre_run_cell")}
    trace = sys.gettrace()
    real_exit = os._exit
    main_thread = threading.main_thread()

    def guarded_exit(code=0):
        if threading.current_thread() is main_thread:
            raise SystemExit(f"os._exit({code}) was called: blocked while autograding")
        real_exit(code)
    os._exit = guarded_exit
    modules["os"] = (os, {"_exit": guarded_exit})

    user_ns = shell.user_ns
    trusted = {}
    before = {}
    audit = _lw_make_audit()

    def restore():
        found = []
        if finder not in sys.meta_path:
            sys.meta_path.insert(0, finder)
            found.append("sys.meta_path changed (the guard's import hook removed)")
        for name, (mod, attrs) in list(modules.items()):
            if name in sys.modules and sys.modules[name] is not mod:
                sys.modules[name] = mod
                found.append(f"sys.modules[{name!r}] replaced")
            d = vars(mod)
            for k, v in attrs.items():
                cur = d.get(k, None)
                if cur is not v:
                    if library_made(cur):   # the library rebound its own name (lazy init)
                        attrs[k] = cur
                        continue
                    setattr(mod, k, v)
                    found.append(f"{name}.{k} replaced")
        for (mname, cname), (cls, attrs) in classes.items():
            d = vars(cls)
            for k, v in attrs.items():
                if d.get(k, None) is not v and not library_made(d.get(k, None)):
                    try:
                        setattr(cls, k, v)
                    except Exception:
                        pass
                    found.append(f"{mname}.{cname}.{k} replaced")
        for (c, k), v in shell_cls.items():
            if vars(c).get(k) is not v:
                setattr(c, k, v)
                found.append(f"IPython {c.__name__}.{k} replaced")
        for k in SHELL_METHODS:
            if vars(shell).get(k, None) is not shell_inst.get(k, None):
                if k in shell_inst:
                    vars(shell)[k] = shell_inst[k]
                else:
                    delattr(shell, k)
                found.append(f"IPython shell.{k} replaced")
        if shell.input_transformer_manager is not tm:
            try:
                shell.input_transformer_manager = tm
            except Exception:
                vars(shell)["input_transformer_manager"] = tm
            found.append("IPython input_transformer_manager replaced")
        for o, k, obj, items in lists:
            if getattr(o, k, None) is not obj:
                try:
                    setattr(o, k, obj)
                except Exception:
                    pass
                found.append(f"IPython {k} replaced")
            if list(obj) != items:
                obj[:] = items
                found.append(f"IPython {k} changed")
        for e, v in pre_events.items():
            if shell.events.callbacks.get(e, []) != v:
                shell.events.callbacks[e] = list(v)
                found.append(f"IPython {e} callbacks changed")
        if sys.gettrace() is not trace:
            sys.settrace(trace)
            found.append("sys.settrace changed")
        return found

    def guard(op, names=()):
        if op == "pre":
            before.clear()
            before.update({k: id(v) for k, v in user_ns.items()})
            return "[]"
        if op == "post_trusted":
            for k, v in list(user_ns.items()):
                if before.get(k) != id(v) and not k.startswith("_") and important(v):
                    trusted[k] = v
            return "[]"
        if op == "audit":
            found = list(audit)
            audit.clear()
            return json.dumps(found)
        if op == "pre_test":
            found = restore()
            for k in names:
                if k in trusted and user_ns.get(k, None) is not trusted[k]:
                    user_ns[k] = trusted[k]
                    found.append(f"{k} (defined by the course notebook) was redefined")
            return json.dumps(found)
        return "[]"
    return guard

import builtins as _lw_b
setattr(_lw_b, "_lw_guard_%(token)s", _lw_make_guard())
del _lw_make_guard, _lw_make_audit, _lw_b
'''


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
            from pathlib import Path

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
            self._installed = bool(await self._run(KERNEL_CODE % {"token": self._token, "policy": self.policy}))
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
