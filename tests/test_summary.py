"""Each notebook names its own headline figures (issue 23, item 3): `print_summary` writes them into
the SUMMARY line and the course runner shows those, hard-coding no key."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
from loraweek.notebook import execute as course  # noqa: E402
from loraweek.notebook.summary import headline_figures, print_summary  # noqa: E402


def test_print_summary_writes_the_headline_and_the_runner_shows_it(capsys):
    print_summary({"loss": 1.5, "steps": 3, "table": {"a": 1}}, headline=("steps", "loss"))
    line = capsys.readouterr().out.strip()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=line + "\n")])])
    summary = course.read_summary(nb)
    assert summary["headline"] == ["steps", "loss"]
    assert list(headline_figures(summary).items()) == [("steps", 3), ("loss", 1.5)]
    run = course.NotebookRun("dayX", 1.0, True, Path("x.ipynb"), summary)
    row = course.format_table([run]).splitlines()[2]
    assert "steps=3, loss=1.5" in row and "table" not in row


def test_a_headline_key_the_summary_lacks_is_refused():
    with pytest.raises(KeyError, match="'tokens_per_s'"):
        print_summary({"loss": 1.5}, headline=("loss", "tokens_per_s"))
    with pytest.raises(KeyError, match="headline"):
        print_summary({"headline": 1}, headline=())


def test_a_summary_without_a_headline_shows_its_first_plain_figures():
    assert headline_figures({"a": 1, "b": {"x": 1}, "c": [1], "d": "x"}) == {"a": 1, "d": "x"}


@pytest.mark.parametrize("path", sorted((ROOT / "solutions" / "week06").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_ends_with_print_summary_and_a_headline(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "print_summary(" in code[-1].source and "headline=(" in code[-1].source, \
        f"{path.name}: the last code cell should call loraweek.notebook.summary.print_summary(summary, headline=(...))"
    assert 'print("SUMMARY "' not in "".join(c.source for c in code), f"{path.name}: prints SUMMARY by hand"
