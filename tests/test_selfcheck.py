"""loraweek.notebook.selfcheck: a blank exercise is reported in one line, a wrong one still fails, and
nothing is caught while grading (NBGRADER_EXECUTION)."""
import pytest

from loraweek.notebook.selfcheck import self_check, your_answer


def _blank(*args):
    raise NotImplementedError()


@pytest.fixture(autouse=True)
def _student(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


def test_blank_exercise_prints_one_line_and_goes_on(capsys):
    ran_after = False
    with self_check("Exercise ②"):
        assert _blank(1) == 2, "never reached"
    ran_after = True
    out = capsys.readouterr().out.splitlines()
    assert ran_after and len(out) == 1, out
    assert out[0].startswith("⚠ Exercise ② not attempted yet (_blank raises NotImplementedError)")
    assert "the cells below use the course's reference answer" in out[0]


def test_blank_method_is_named_with_its_class(capsys):
    class LoRALinear:
        def __init__(self):
            raise NotImplementedError()

    with self_check("Exercise 1"):
        LoRALinear()
    assert "LoRALinear.__init__ raises NotImplementedError" in capsys.readouterr().out


def test_wrong_answer_fails_loudly_with_its_message(capsys):
    with pytest.raises(AssertionError, match="B must start at zero"):
        with self_check("Exercise 1"):
            assert 1 == 0, "B must start at zero"
    with pytest.raises(TypeError):
        with self_check("Exercise 1"):
            len(3)
    assert capsys.readouterr().out == ""


def test_values_still_none_count_as_not_attempted(capsys):
    targets, r = None, 16
    with self_check("Exercise ③", LORA_TARGETS=targets, LORA_R=r):
        assert isinstance(targets, list), "adapt at least q_proj and v_proj"
    out = capsys.readouterr().out
    assert out.startswith("⚠ Exercise ③ not attempted yet (LORA_TARGETS still None)"), out
    with pytest.raises(AssertionError, match="choose an integer rank"):   # set, but wrong
        with self_check("Exercise ③", LORA_TARGETS=["q_proj"], LORA_R=0.5):
            assert isinstance(0.5, int), "choose an integer rank"


def test_passing_check_prints_only_its_own_output(capsys):
    with self_check("Exercise ④"):
        print("visible checks passed")
    assert capsys.readouterr().out == "visible checks passed\n"


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_grading_catches_nothing(monkeypatch, mode):
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    with pytest.raises(NotImplementedError):
        with self_check("Exercise ②"):
            _blank()
    with pytest.raises(AssertionError):
        with self_check("Exercise ③", LORA_R=None):
            assert False
    with pytest.raises(NotImplementedError):
        with your_answer():
            _blank()


def test_your_answer_skips_a_blank_answer_quietly(capsys):
    with your_answer():
        raise NotImplementedError()
    with pytest.raises(ValueError):
        with your_answer():
            raise ValueError("a real error in the answer")
    assert capsys.readouterr().out == ""
