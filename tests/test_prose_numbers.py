"""Every number in a notebook's prose comes from the run or carries its source (issue 21, item 3).

A static scan of the markdown cells of solutions/week06/*.ipynb (the student notebooks are
generated from them).  A figure typed into prose goes stale the moment a profile, a seed or a
library changes, so a digit in a markdown cell must be one of:

* **sourced**: its block (a paragraph, a list item or a whole table) cites where it comes from: an
  arXiv id (``arXiv 2305.14314``), a URL, an author-year citation (``Hu et al. 2021``) or a
  parenthesis ending in a year, a ``(source, date)`` (``(USD, 2025)``, ``(peft's benchmark, 2025)``);
* **not a figure**: headings (section numbers), code spans and formulas (``r·(d_in + d_out)``,
  ``$W \\in R^{d×r}$``), link targets, years, version numbers, names with digits in them (fp16,
  int8, NF4, 4-bit, T4, Qwen2.5-0.5B-Instruct, SmolLM2-135M, LLM01, ZeRO-3), model sizes (0.5B,
  7B, 65B), references to parts of the course (Day 2, Exercise 3, section 5, §4, Trap 1), ordered-list
  and table row numbers, an exercise's points, and the statement of a graded exercise (a markdown
  cell headed "Exercise ..." or "Quiz": it specifies what to compute, and its own tests check it),
  and the study-time table `loraweek.notebook.study` generates from the sections' word counts;
* otherwise it must be printed by the run: format the sentence from variables in a code cell
  (``print(f"... {value:.1%} ...")``) placed right after the prose, and remove it from the markdown.

The failure lists file, cell index, the figure and its sentence, and how to fix it.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from loraweek.notebook.study import BEGIN as STUDY_BEGIN, END as STUDY_END

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions" / "week06").glob("*.ipynb"))

# where a figure comes from, anywhere in its block
SOURCE = re.compile(r"arXiv:?\s*\d{4}\.\d{4,5}|https?://|\bet al\.?,?[^.;|]*?\b(?:19|20)\d{2}\b"
                    r"|\([^()]*\b(?:19|20)\d{2}(?:-\d{2}(?:-\d{2})?)?\)")
# text that holds digits but no typed-in figure; removed before looking for digits
NOT_FIGURES = [
    re.compile(r"`[^`]*`"),                                   # code spans
    re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S),               # formulas
    re.compile(r"\]\([^)]*\)|https?://\S+|<[^>]+>"),         # link targets, URLs, HTML tags
    re.compile(r"(?:\b[1-5]\d\d\b\s*/\s*)+\b[1-5](?:\d\d|xx)\b|\((?:[1-5]\d\d)\b|\bHTTP\s[1-5]\d\d\b"),
    # ^ HTTP statuses: "400 / 401 / 5xx", "(413)", "HTTP 400"
    re.compile(r"\b(?:19|20)\d{2}\b"),                        # years
    re.compile(r"\b\d+(?:\.\d+){2,}\b"),                      # version numbers
    re.compile(r"\b[A-Za-z_][\w.]*\d[\w.]*(?:-[\w.]+)*"),          # fp16, T4, Qwen2.5-0.5B, LLM01, gemm_4bit
    re.compile(r"\b[A-Za-z]+(?:-[\w.]*\d[\w.]*)+"),                # LLaMA-65B, ZeRO-3, SHA-256
    re.compile(r"\b(?:Llama|Qwen|Gemma|Python|CUDA|transformers|peft|torch)\s\d+(?:\.(?:\d+|x))*"),  # Llama 3.x
    re.compile(r"\b\d+(?:/\d+)*-bit\b|\b\d+(?:\.\d+)?B\b|\b\dxx\b"),  # 4-bit, 16/32-bit; sizes 0.5B, 7B; 5xx
    re.compile(r"(?:\b(?:Week|Days?|Ngày|[Ee]xercises?|[Ss]ections?|Trap|[Ii]ssue|[Ii]tem|[Ss]teps?|[Ss]tages?|port)|§)"
               r"\s*\d+(?:\s*(?:[–,-]|and|&)\s*\d+)*\b"),       # parts of the course, step 0, stage 2, port 8080
    re.compile(r"\b\d+\s*(?:points?|pts)\b"),                 # an exercise's points
]
LIST_NUMBER = re.compile(r"^\s*(?:\d+\.\s|\|\s*\d+\s*\|)", re.M)   # "1. item", "| 1 | row"
POINTS_IN_PARENS = re.compile(r"\(\d+\)|\*\*\d+\*\*")           # "① scrubber (2)", "**1** LoRALinear" beside "points"
FIGURE = re.compile(r"[~≈<>]?\s*\d[\d,.]*\s*(?:%|×|x\b|[KMG]B\b|GiB|MiB|ms\b|s\b|M\b)?")
EXERCISE_HEADING = re.compile(r"^#+\s*(?:[^\n]*\s)?(?:Exercise|Quiz)\b", re.M)   # a quiz is graded too
# the study-time table, generated from each section's word count by `python -m loraweek.notebook.study --update`
# (tests/test_quiz.py fails when it is stale): computed, not typed
STUDY_TABLE = re.compile(re.escape(STUDY_BEGIN) + r".*?" + re.escape(STUDY_END), re.S)
HOW = ("print it from the run (a code cell right after the prose that formats the sentence from "
       "variables: print(f\"... {value:.1%} ...\")) or give its block a source and date (arXiv id, URL, "
       "'(source, 2025)')")


def blocks(markdown: str) -> list[str]:
    """Paragraphs, list items and whole tables: the scope of a citation."""
    out, current = [], []
    for line in markdown.splitlines():
        row = line.lstrip().startswith("|")
        in_table = bool(current) and current[-1].lstrip().startswith("|")
        starts = re.match(r"\s*(?:[*+-]|\d+\.)\s", line) or (row and not in_table) or (in_table and not row)
        if not line.strip() or starts or line.lstrip().startswith("#"):
            if current:
                out.append("\n".join(current))
            current = []
        if line.strip():
            current.append(line)
            if line.lstrip().startswith("#"):
                out.append("\n".join(current))
                current = []
    if current:
        out.append("\n".join(current))
    return out


def typed_figures(markdown: str) -> list[tuple[str, str]]:
    """(figure, its block) for every digit that is neither sourced nor an allowed non-figure."""
    if EXERCISE_HEADING.search(markdown):
        return []
    found = []
    for block in blocks(STUDY_TABLE.sub(" ", markdown)):
        if block.lstrip().startswith("#") or SOURCE.search(block):
            continue
        text = LIST_NUMBER.sub(" ", block)
        for pattern in NOT_FIGURES:
            text = pattern.sub(" ", text)
        if re.search(r"\bpoints?\b|\bpts\b", block):
            text = POINTS_IN_PARENS.sub(" ", text)
        for m in FIGURE.finditer(text):
            if re.search(r"\d", m.group()):
                found.append((m.group().strip(), " ".join(block.split())))
    return found


def scan(path: Path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for figure, block in typed_figures(cell.source):
            context = block if len(block) <= 160 else block[:157] + "..."
            problems.append(f"{path.name} cell {i}: typed figure {figure!r} in \"{context}\"")
    return problems


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_prose_has_no_typed_in_figures(path):
    found = scan(path)
    assert not found, f"{len(found)} figure(s) typed into prose; for each, {HOW}:\n" + "\n".join(found)


# --- the scanner itself, on a synthetic notebook -------------------------------------------------

def test_scanner_flags_a_new_typed_figure_and_spares_the_allowed_ones(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    allowed = ("## 3. Exercise 2 — Day 4's metrics on Qwen2.5-0.5B-Instruct (fp16, NF4, 4-bit, a T4, 7B)\n\n"
               "Section 5 trains `r = 16` adapters, $r(d_{in} + d_{out})$ numbers; transformers 5.23.0, 2025.\n\n"
               "* QLoRA fits a 65B model on one 48 GB GPU (Dettmers et al. 2023).\n"
               "* peft's table: 36.2 GiB against 20.8 GiB (peft's benchmark, 2025).\n\n"
               "**Graded exercises** (10 points): ① scrubber (2) · ② masking (3).\n\n"
               "1. first step\n2. second step")
    typed = ("The loss falls by ~9 % in these 200 steps.\n\n"
             "| method | speed |\n| --- | --- |\n| LoRA | 25 % faster |")
    nb = new_notebook(cells=[new_markdown_cell(allowed), new_code_cell("print(1)"), new_markdown_cell(typed)])
    path = tmp_path / "day0_synthetic.ipynb"
    nbformat.write(nb, str(path))
    found = scan(path)
    assert [f.split(": typed figure ")[1].split(" in ")[0] for f in found] == ["'~9 %'", "'200'", "'25 %'"], found
    assert all(f.startswith("day0_synthetic.ipynb cell 2:") for f in found), found
    assert "these 200 steps" in found[1]


def test_an_exercise_statement_may_specify_its_numbers():
    assert typed_figures("### Exercise ③ — PSI (2 points)\n\nReplace shares below `eps` by 0.0001; PSI > 0.25 is a shift.") == []
    assert typed_figures("PSI > 0.25 is a shift.") == [("> 0.25", "PSI > 0.25 is a shift.")]
