"""Every notebook prints how long it takes in each profile, from the one measured table."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek.notebook import timings  # noqa: E402
from loraweek.profiles import PROFILE_NAMES  # noqa: E402

NOTEBOOKS = sorted((ROOT / "solutions" / "week06").glob("*.ipynb"))


def test_the_table_covers_every_notebook_and_profile():
    assert set(timings.MINUTES) == {p.stem for p in NOTEBOOKS}
    for stem, row in timings.MINUTES.items():
        assert tuple(row) == PROFILE_NAMES, stem
        for name, minutes in row.items():
            assert minutes is None or minutes > 0, (stem, name)
            if minutes is not None:
                assert name in timings.MEASURED, f"{stem}/{name}: a figure needs its measurement in MEASURED"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_prints_its_own_row_in_its_first_cells(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][:4]
    assert any(f'print_environment(profile, notebook="{path.stem}")' in c for c in code), path.name


def test_describe_marks_the_run_and_says_what_is_not_measured():
    text = timings.describe("day1_lora_qlora_intro", "laptop")
    assert "laptop" in text and "<- this run" in text and "not measured yet" in text
    assert "trains it" not in text  # Day 1 does not use the course adapter
    later = timings.describe("day4_evaluation", "laptop")
    assert f"about {timings.ADAPTER_MINUTES['laptop']:g} min more" in later
    assert "not measured yet for this profile" in timings.describe("day4_evaluation", "colab")
    assert set(timings.ADAPTER_MINUTES) == set(PROFILE_NAMES) and set(timings.USES_COURSE_ADAPTER) <= set(timings.MINUTES)
    with pytest.raises(ValueError, match="unknown notebook"):
        timings.describe("day9", "ci")
