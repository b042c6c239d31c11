"""The course runner's arguments (scripts/run_course.py): a wrong folder or filter says what it
expected instead of printing an empty table.  (Running notebooks through it: test_notebooks.py.)"""
import pytest

from scripts import run_course


def test_a_folder_without_notebooks_is_named(tmp_path):
    with pytest.raises(SystemExit, match=rf"no notebooks in {tmp_path}.*--solutions"):
        run_course.main(["--solutions", str(tmp_path)])


def test_only_that_matches_nothing_lists_the_notebooks():
    with pytest.raises(SystemExit, match=r"--only 'day9' matches none of .*day1_lora_qlora_intro\.ipynb"):
        run_course.main(["--only", "day9"])


def test_the_course_is_the_five_days_in_order():
    names = [nb.name for nb in run_course.course_notebooks()]
    assert [n.split("_")[0] for n in names] == ["day1", "day2", "day3", "day4", "day5"], names
