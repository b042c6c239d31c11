"""`python -m scripts.run_course --html`: executed notebooks become HTML pages with an index."""
from pathlib import Path

import nbformat

from loraweek.notebook.execute import NotebookRun
from loraweek.notebook.reference_html import write_reference_pages


def _executed(path: Path, text: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('hi')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells = [nbformat.v4.new_markdown_cell("# Day 9 — test"), cell]
    nbformat.write(nb, path)
    return path


def test_pages_keep_outputs_and_index_names_every_run(tmp_path):
    ok = _executed(tmp_path / "day9_ok.ipynb", "SUMMARY {\"val_loss\": 0.4321}\n")
    runs = [NotebookRun("day9_ok", 12.3, True, ok),
            NotebookRun("day8_failed", 4.0, False, tmp_path / "missing.ipynb", error="boom\nKeyError: 'x'")]
    index = write_reference_pages(runs, tmp_path / "html" / "ci", "ci", Path(__file__).parents[1])
    page = (tmp_path / "html" / "ci" / "day9_ok.html").read_text()
    assert "0.4321" in page and "Day 9" in page          # the output, not only the source
    text = index.read_text()
    assert "day9_ok.html" in text and "profile <code>ci</code>" in text
    assert "day8_failed" in text and "KeyError" in text   # a failed run is listed, not dropped
