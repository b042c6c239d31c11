"""The kernel side of the cell guard (cell_guard.py): the audit hook and the restorer of a test cell's world.

Not imported by the grader to run: `cell_guard.kernel_code` sends this file's source (without
this docstring) to the submission's kernel as one silent cell, followed by a call of
`_lw_install` with the run's values as one JSON text, and deletes the three names again::

    _lw_install('{"token": "...", "policy": "..."}')
    del _lw_make_guard, _lw_make_audit, _lw_install

`_lw_install` puts the guard function at ``builtins._lw_guard_<token>`` (the token is a fresh
secret of each notebook), which the grader then calls through user expressions.  The cell runs
in the notebook's namespace, so this file defines only functions and imports nothing at its top
(importing it has no effect); it is stdlib-only, and it must not use ``from __future__``
imports, which would carry over to the notebook's own cells.
"""


def _lw_make_audit(policy):
    # A Python audit hook (PEP 578; it cannot be removed once added) that notes every attempt
    # to write where a submission must not (the course package, the venv, the model cache's
    # existing files, start-up files, the grading folder) and every read of the grading folder
    # or the instructor's notebooks.  Notes, not blocks: the sandbox (or the fingerprint guard)
    # is what stops the write; this says which cell tried.
    import builtins as B, json, os, sys
    # This code runs in the notebook's namespace: a name it does not bind here would be looked up
    # in the submission's globals first, where `any = lambda *a: False` would blind it.  So every
    # builtin it calls is bound now, as a local its inner functions close over.
    Exception, any, bool, int, isinstance, len, str, tuple = (
        B.Exception, B.any, B.bool, B.int, B.isinstance, B.len, B.str, B.tuple)
    P = json.loads(policy)
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


def _lw_make_guard(policy):
    import builtins, importlib, json, os, pkgutil, sys, threading, types
    B = builtins   # every builtin called below, bound as a local (see _lw_make_audit for why)
    (Exception, SystemExit, callable, classmethod, delattr, getattr, hasattr, id, isinstance, list,
     property, setattr, staticmethod, str, tuple, type, vars) = (
        B.Exception, B.SystemExit, B.callable, B.classmethod, B.delattr, B.getattr, B.hasattr, B.id,
        B.isinstance, B.list, B.property, B.setattr, B.staticmethod, B.str, B.tuple, B.type, B.vars)
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
        # every callable of a watched module: numpy's functions are dispatcher objects and its
        # ufuncs instances (neither a FunctionType), and a replaced `numpy.mean` must be seen too
        attrs = {k: v for k, v in vars(mod).items() if important(v) or callable(v)}
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

    shell = get_ipython()  # noqa: F821  (IPython's builtin: this runs in the kernel)
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
    audit = _lw_make_audit(policy)

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


def _lw_install(config_json):
    # `config_json`: {"token": the guard function's name suffix, "policy": the audit hook's
    # paths as the JSON text GuardedExecute.policy holds}
    import builtins, json
    config = json.loads(config_json)
    setattr(builtins, "_lw_guard_" + config["token"], _lw_make_guard(config["policy"]))
