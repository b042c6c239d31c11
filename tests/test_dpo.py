"""Day 3's preference tuning: the pair builder, DPO with the adapter-off reference against an explicit
reference copy (real TRL runs on the ci model), and the exercise's solution against TRL's own loss."""
import math
from pathlib import Path

import nbformat
import pytest
import torch

from loraweek.data import preference, schema
from loraweek.data.pii import find_pii
from loraweek.data.answer import parse_answer
from loraweek.methods import dpo

ROOT = Path(__file__).resolve().parent.parent
DAY3 = ROOT / "solutions" / "week06" / "day3_method_comparison.ipynb"


@pytest.fixture(scope="module")
def examples():
    return schema.load_split("train")[:60]


def test_pairs_show_each_failure_and_are_seeded(examples):
    pairs = preference.build_pairs(examples)
    counts = preference.kind_counts(pairs)
    assert len(pairs) == len(examples) and sum(counts.values()) == len(pairs)
    assert set(counts) == set(preference.KINDS) and min(counts.values()) >= 5, counts  # pii_leak needs PII
    by_id = {ex.id: ex for ex in examples}
    for p in pairs:
        ex = by_id[p.source_id]
        assert parse_answer(p.chosen) == ex.target()
        got = parse_answer(p.rejected)
        if p.kind == "invalid_json":
            assert got is None
            continue
        assert got is not None, (p.kind, p.rejected)
        if p.kind == "wrong_intent":
            assert got["intent"] != ex.intent and got["reply"] == ex.reply
        elif p.kind == "wrong_language":
            assert got["language"] != ex.language and got["reply"] != ex.reply
        elif p.kind == "pii_leak":
            assert any(value in got["reply"] for _, value in find_pii(ex.message))
            assert got["intent"] == ex.intent and got["language"] == ex.language
        elif p.kind == "rude":
            assert got["reply"] in preference.RUDE_REPLIES[ex.language]
    assert preference.build_pairs(examples) == pairs
    assert preference.build_pairs(examples, seed=1) != pairs


def test_split_never_shares_a_message(examples):
    pairs = preference.build_pairs(examples)
    train, val = preference.split_pairs(pairs, validation_fraction=0.25)
    assert len(val) == 15 and len(train) + len(val) == len(pairs)
    assert not {p.source_id for p in train} & {p.source_id for p in val}
    ds = preference.to_dataset(val)
    assert [m["role"] for m in ds[0]["prompt"]] == ["system", "user"] and ds[0]["chosen"][0]["role"] == "assistant"
    assert all(not find_pii(row["prompt"][1]["content"]) for row in ds), "prompts must be scrubbed"


@pytest.mark.parametrize("call,field", [
    (lambda: preference.validate_pair('{"a": 1}', '{"a": 1}'), "'rejected'"),
    (lambda: preference.validate_pair("", '{"a": 1}'), "'chosen'"),
    (lambda: preference.validate_pair('{"a": 1}', "   "), "'rejected'"),
    (lambda: preference.PreferencePair("id", "msg", "same", "same", "rude"), "'rejected'"),
    (lambda: preference.build_pairs(schema.load_split("train")[:3], kinds=["polite"]), "kinds"),
    (lambda: preference.split_pairs([], validation_fraction=1.5), "validation_fraction"),
    (lambda: dpo.check_beta(0), "beta"),
    (lambda: dpo.dpo_loss(*torch.zeros(4, 2), beta=-1.0), "beta"),
    (lambda: dpo.trl_dpo_loss(*torch.zeros(4, 2), beta=0.0), "beta"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def _exercise_solution():
    nb = nbformat.read(str(DAY3), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex_dpo_loss")
    namespace = {"torch": torch}
    exec(cell.source, namespace)  # the instructor's solution, markers are comments
    return namespace["dpo_loss_from_logps"]


def test_exercise_solution_and_package_match_trl_loss():
    solution = _exercise_solution()
    for seed, beta, n in ((0, 0.1, 5), (1, 0.5, 1), (2, 3.0, 12)):
        g = torch.Generator().manual_seed(seed)
        logps = [-40 * torch.rand(n, generator=g) for _ in range(4)]
        trl = float(dpo.trl_dpo_loss(*logps, beta))
        assert abs(float(solution(*logps, beta)) - trl) < 1e-5
        assert abs(float(dpo.dpo_loss(*logps, beta)) - trl) < 1e-5
    same = torch.full((2,), -3.0)
    assert abs(float(dpo.trl_dpo_loss(same, same, same, same, 0.1)) - math.log(2)) < 1e-6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real 2-step TRL runs on the ci model: adapter-off reference and an explicit copy."""
    from loraweek.profiles import get_profile

    profile = get_profile("ci").replace(batch_size=2, grad_accum=1)
    sft, tokenizer = dpo.sft_model(profile)
    pairs = preference.build_pairs(schema.load_split("train")[:8])
    train, val = preference.split_pairs(pairs, validation_fraction=0.25)
    ds = preference.to_dataset(train)
    out = tmp_path_factory.mktemp("dpo")
    kw = dict(steps=2, beta=0.1, learning_rate=profile.learning_rate)
    off = dpo.run_dpo(sft, tokenizer, ds, profile, out / "off", reference="adapter_off", **kw)
    explicit = dpo.run_dpo(sft, tokenizer, ds, profile, out / "explicit", reference="explicit", **kw)
    return sft, off, explicit, preference.to_dataset(val)


def test_adapter_off_reference_equals_an_explicit_copy(runs):
    sft, off, explicit, val = runs
    assert off.trainer.ref_model is None and list(off.model.peft_config) == ["default"]
    assert explicit.trainer.ref_model is not None
    assert off.reference_weights_mb == 0 and explicit.reference_weights_mb > 0
    assert len(off.losses) == len(explicit.losses) == 2
    # step 1: the new adapter's B is 0, so policy == reference == the SFT model: loss log 2
    assert abs(off.losses[0] - math.log(2)) < 1e-5
    assert max(abs(a - b) for a, b in zip(off.losses, explicit.losses)) < 1e-4, (off.losses, explicit.losses)
    # the adapter-off reference's log-probs are the SFT model's own
    with_off = dpo.pair_scores(off.trainer, val)
    with_sft = dpo.pair_scores(off.trainer, val, reference_model=sft)
    for key in ("ref_chosen", "ref_rejected"):
        assert torch.allclose(with_off[key], with_sft[key], atol=1e-4)
    assert not torch.allclose(with_off["policy_chosen"], with_off["ref_chosen"], atol=1e-4), "training moved the policy"


def test_a_reference_with_the_adapter_on_gives_no_signal(runs):
    _, off, _, val = runs
    live = dpo.preference_metrics(dpo.pair_scores(off.trainer, val, reference_model=off.model))
    assert live["margin"] == 0 and live["accuracy"] == 0 and abs(live["loss"] - math.log(2)) < 1e-6
