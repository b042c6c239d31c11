"""Visible checks state every requirement the hidden tests grade (issue 21, item 2).

Static, no kernel: for every graded test cell of every solution notebook, each hidden-test
assertion about the student's answer (an ``assert`` whose condition uses a name the exercise's
solution cells define, directly or through a variable computed from one, and every
``raise AssertionError(...)``) must

* carry a message that names the requirement: a plain string, or a tuple whose first item is one
  (``assert ok, ("not idempotent", _ex.id)``) -- nbgrader's feedback shows the student exactly this;
* have a visible counterpart: that string appears in the message of a visible assert of the same
  cell (``with self_check(...)``), or in the exercise's markdown text (the markdown cells since the
  previous graded test cell).

Every visible check also prints a line with "passed" when it succeeds.  Asserts that use no student
name (the hidden test checking its own random cases, ``assert _found > 0``) are not requirements.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions" / "week06").glob("*.ipynb"))
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HOW = ("give the hidden assert a plain-string message naming the requirement (data after it in a tuple), "
       "then add a visible check in the same cell whose assert message contains that string, or state "
       "it in the exercise's markdown text")


@dataclass
class Exercise:
    notebook: str
    cell: int                      # index of the graded test cell
    grade_id: str
    visible: str                   # the test cell above BEGIN HIDDEN TESTS
    hidden: str                    # between the markers
    markdown: list[tuple[int, str]] = field(default_factory=list)
    student_names: set[str] = field(default_factory=set)


def _split(source: str) -> tuple[str, str]:
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible), "\n".join(hidden)


def _defined_names(source: str) -> set[str]:
    """Names a solution cell defines at its top level (functions, classes, assigned names,
    also inside `with your_answer():`, `if`, `try`), not the locals of its functions."""
    names: set[str] = set()

    def visit(stmts):
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(s.name)
                continue
            if isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            for attr in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(s, attr, []) or [])

    visit(ast.parse(source).body)
    return names


def exercises(path: Path) -> list[Exercise]:
    """Every graded test cell holding hidden tests, with the exercise text and solution names
    of the cells since the previous graded test cell."""
    nb = nbformat.read(str(path), as_version=4)
    out, since = [], 0
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        if BEGIN in cell.source:
            visible, hidden = _split(cell.source)
            ex = Exercise(path.name, i, meta.get("grade_id", "?"), visible, hidden)
            for j in range(since, i):
                c = nb.cells[j]
                if c.cell_type == "markdown":
                    ex.markdown.append((j, c.source))
                elif c.get("metadata", {}).get("nbgrader", {}).get("solution"):
                    ex.student_names |= _defined_names(c.source)
            out.append(ex)
        since = i + 1
    return out


def _norm(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"[`*]", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _literal(node) -> str | None:
    """A string constant's text; an f-string's literal parts with '…' for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else " … " for v in node.values)
    return None


def _message(msg) -> str | None:
    """The requirement a hidden assert names: a plain string, or a tuple's leading plain string."""
    if isinstance(msg, ast.Tuple) and msg.elts:
        msg = msg.elts[0]
    if isinstance(msg, ast.Constant) and isinstance(msg.value, str):
        return msg.value
    return None


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _assertions(tree) -> list[tuple[ast.AST, ast.AST | None, ast.AST | None]]:
    """(statement, condition or None, message node or None) of every assert / raise AssertionError."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found.append((node, node.test, node.msg))
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and isinstance(node.exc.func, ast.Name) and node.exc.func.id == "AssertionError":
            found.append((node, None, node.exc.args[0] if node.exc.args else None))
    return found


def _tainted(tree, student: set[str]) -> set[str]:
    """Student names plus every variable computed from one (assignments, loop targets)."""
    tainted = set(student)
    for _ in range(3):   # loops: a later assignment can feed an earlier use
        for node in ast.walk(tree):
            pairs = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.comprehension)):
                pairs = [(node.target, node.iter)]
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                pairs = [(node.optional_vars, node.context_expr)]
            for target, value in pairs:
                if _names(value) & tainted:
                    tainted |= _names(target)
    return tainted


def visible_messages(visible: str) -> list[str]:
    return [text for _, _, msg in _assertions(ast.parse(visible))
            if msg is not None and (text := _literal(msg)) is not None]


def problems(ex: Exercise) -> list[str]:
    """What a student cannot see coming, one actionable line each."""
    where = f"{ex.notebook} cell {ex.cell} ({ex.grade_id})"
    out = []
    vis_tree = ast.parse(ex.visible)
    passed = [s for n in ast.walk(vis_tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id == "print" for a in n.args if (s := _literal(a)) and "passed" in s.lower()]
    # loraweek.notebook.quiz.check_format prints the quiz's own "format check passed" line
    passed += [n.func.attr for n in ast.walk(vis_tree) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Attribute) and n.func.attr == "check_format"]
    if not passed:
        out.append(f"{where}: the visible check prints nothing on success: end it with "
                   f"print(\"<name>: visible checks passed\")")
    seen = _norm("\n".join(visible_messages(ex.visible)))
    text = _norm("\n".join(src for _, src in ex.markdown))
    hidden_tree = ast.parse(ex.hidden)
    tainted = _tainted(hidden_tree, ex.student_names)
    lines = ex.hidden.splitlines()
    for stmt, cond, msg in _assertions(hidden_tree):
        if cond is not None and not (_names(cond) & tainted):
            continue   # the test checking itself, not the student's answer
        snippet = lines[stmt.lineno - 1].strip()[:90]
        requirement = _message(msg) if msg is not None else None
        if requirement is None:
            out.append(f"{where}: hidden line {stmt.lineno} `{snippet}` has no plain-string message "
                       f"naming the requirement: {HOW}")
        elif _norm(requirement) not in seen and _norm(requirement) not in text:
            md = [j for j, _ in ex.markdown]
            out.append(f"{where}: hidden line {stmt.lineno} `{snippet}` requires {requirement!r}, which no "
                       f"visible assert message of the cell says and the exercise text (markdown cells {md}) "
                       f"does not state: add a visible check with that message or state it in the text")
    return out


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_hidden_requirement_is_visible(path):
    found = exercises(path)
    assert found, f"{path.name}: no graded test cell with hidden tests"
    bad = [p for ex in found for p in problems(ex)]
    assert not bad, f"{len(bad)} hidden requirement(s) the student cannot see:\n" + "\n".join(bad)


# --- the checker itself, on a synthetic notebook -------------------------------------------------

def _synthetic(tmp_path, visible: str, hidden: str, text: str = "### Exercise ① — double (1 point)") -> Path:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    sol = {"nbgrader": {"grade": False, "solution": True, "grade_id": "ex_double", "locked": False,
                        "schema_version": 3, "task": False}}
    test = {"nbgrader": {"grade": True, "solution": False, "grade_id": "test_double", "locked": True,
                         "points": 1, "schema_version": 3, "task": False}}
    nb = new_notebook(cells=[
        new_markdown_cell(text),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", metadata=sol),
        new_code_cell(f"{visible}\n{BEGIN}\n{hidden}\n{END}", metadata=test)])
    path = tmp_path / "day0_synthetic.ipynb"
    nbformat.write(nb, str(path))
    return path


VISIBLE_OK = ('with self_check("Exercise ①"):\n'
              '    assert double(2) == 4, f"double must multiply by 2, got {double(2)}"\n'
              '    print("double: visible checks passed")')


def test_checker_accepts_a_requirement_stated_visibly_or_in_the_text(tmp_path):
    hidden = ('_got = [double(x) for x in range(5)]\n'
              'assert _got == [0, 2, 4, 6, 8], ("double must multiply by 2", _got)\n'
              'assert double(-1) == -2, "negative numbers work too"\n'
              '_n = 0\nassert _n == 0   # the test checking itself: no student name')
    path = _synthetic(tmp_path, VISIBLE_OK, hidden, text="Write `double(x)`; **negative numbers** work too.")
    assert [p for ex in exercises(path) for p in problems(ex)] == []


def test_checker_flags_a_hidden_requirement_the_student_cannot_see(tmp_path):
    hidden = ('assert double(0.5) == 1.0, "floats must work"\n'
              'assert double(3) == 6\n'
              'try:\n    double("x")\n    raise AssertionError("a string must raise TypeError")\n'
              'except TypeError:\n    pass')
    path = _synthetic(tmp_path, VISIBLE_OK.replace('    print("double: visible checks passed")', "    pass"), hidden)
    found = [p for ex in exercises(path) for p in problems(ex)]
    assert len(found) == 4, found
    assert "prints nothing on success" in found[0]
    assert "'floats must work'" in found[1] and "cell 2 (test_double)" in found[1]
    assert "no plain-string message" in found[2] and "assert double(3) == 6" in found[2]
    assert "'a string must raise TypeError'" in found[3]
