"""Day 3 methods: bottleneck adapter, half fine-tuning, checkpoints of every method,
peft's add_weighted_adapter trap, the decision matrix, and bad input."""
import math

import pytest
import torch

from loraweek.methods import bottleneck, combine, compare, decision, hft, registry
from loraweek.models import load_model
from loraweek.profiles import get_profile


@pytest.fixture(scope="module")
def profile():
    # real ci model and data, the fewest examples that still exercise every code path
    return get_profile("ci").replace(train_examples=32, eval_examples=8, batch_size=4, sweep_steps=2,
                                     score_examples=4, max_new_tokens=8)


@pytest.fixture(scope="module")
def data(profile):
    return compare.load_data(profile, compare.CompareBudget.from_profile(profile))


@pytest.fixture(scope="module")
def probe(data):
    from loraweek.training import make_collator

    batch = make_collator(data.tokenizer, "padded")(data.validation[:3])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


@torch.no_grad()
def logits(model, batch):
    model.eval()
    return model(**batch).logits


def test_bottleneck_starts_as_the_base_model_and_round_trips(profile, probe, tmp_path):
    base_logits = logits(load_model(profile, quantization=None), probe)
    model = bottleneck.add_bottleneck_adapters(load_model(profile, quantization=None), bottleneck=8)
    assert torch.equal(logits(model, probe), base_logits), "a zero-initialised up-projection must change nothing"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter." in n for n in trainable), "only adapter weights may train"
    n_layers = model.config.num_hidden_layers
    assert len(trainable) == n_layers * 2 * 4  # attention + MLP adapters, down/up weight + bias each

    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if ".adapter.up." in name:
            p.data.normal_(0, 0.05)
    changed = logits(model, probe)
    assert not torch.allclose(changed, base_logits, atol=1e-4), "a non-zero adapter must change the outputs"
    bottleneck.save_bottleneck(model, tmp_path / "adapter")
    assert {f.name for f in (tmp_path / "adapter").iterdir()} == {bottleneck.CONFIG_FILE, bottleneck.WEIGHTS_FILE}
    reloaded = bottleneck.load_bottleneck(load_model(profile, quantization=None), tmp_path / "adapter")
    assert torch.equal(logits(reloaded, probe), changed)


def test_bottleneck_forward_is_residual_down_gelu_up():
    torch.manual_seed(0)
    adapter = bottleneck.BottleneckAdapter(6, 3)
    torch.nn.init.normal_(adapter.up.weight)
    h = torch.randn(2, 4, 6)
    expected = h + adapter.up(torch.nn.functional.gelu(adapter.down(h)))
    assert torch.allclose(adapter(h), expected)


def test_half_fine_tuning_freezes_exactly_half_per_stage(profile):
    model = load_model(profile, quantization=None)
    groups = hft.parameter_groups(model)
    trained = hft.freeze_random_half(model, seed=3)
    assert len(trained) == len(groups) - len(groups) // 2
    frozen = [g for g in groups if g not in trained]
    assert all(not p.requires_grad for g in frozen for p in groups[g])
    assert all(p.requires_grad for g in trained for p in groups[g])
    assert hft.freeze_random_half(model, seed=4) != trained, "each stage draws a new half"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", list(registry.METHODS))
def test_every_method_trains_saves_and_reloads_identically(method, profile, data, probe, tmp_path):
    base = logits(registry.load_base(method, profile), probe)
    before = {n: p.detach().clone() for n, p in registry.build(method, profile, max_steps=2).named_parameters()}
    result = compare.train_method(method, profile, data, tmp_path / "run", learning_rate=registry.learning_rates(
        method, profile)[-1], steps=2)
    model = result.model
    trained = logits(model, probe)
    # prompt tuning returns logits for its virtual tokens too: compare the real positions
    assert not torch.allclose(trained[:, -base.shape[1]:], base, atol=1e-6), f"{method}: two training steps changed nothing"
    registry.save_checkpoint(method, model, tmp_path / "ckpt")
    assert registry.checkpoint_mb(tmp_path / "ckpt") > 0
    reloaded = registry.load_checkpoint(method, profile, tmp_path / "ckpt")
    assert torch.allclose(logits(reloaded, probe), trained, atol=1e-5), f"{method}: the reloaded checkpoint differs"
    if method == "hft":  # groups no stage trained are bit-for-bit the base weights
        stages = model.hft_stages
        assert len(stages) == 2
        never = set(hft.parameter_groups(model)) - {g for s in stages for g in s}
        after = dict(model.named_parameters())
        for g in never:
            for n, p in after.items():
                if ".".join(n.split(".")[1:4]) == g or n.split(".")[-2] == g:
                    assert torch.equal(p, before[n]), n


def test_one_plain_lora_combined_alone_reproduces_itself(profile, probe):
    for kind in ("cat", "linear", "svd"):
        err = combine.roundtrip_error(load_model(profile, quantization=None), probe["input_ids"], "lora", kind)
        assert err < 1e-4, f"{kind}: plain LoRA combined alone with weight 1.0 differs by {err}"


def test_rslora_and_dora_combination_trap_is_still_there(profile, probe):
    # If this fails, peft fixed add_weighted_adapter for rsLoRA / DoRA: update the Day 3 notebook's warning.
    for variant in ("rslora", "dora"):
        err = combine.roundtrip_error(load_model(profile, quantization=None), probe["input_ids"], variant, "cat")
        assert err > 1e-3, variant


def test_decision_matrix_normalises_explicitly_and_sensitivity_reports_flips():
    table = {"a": {"quality": 0.9, "memory": 100.0}, "b": {"quality": 0.5, "memory": 10.0},
             "c": {"quality": 0.7, "memory": 55.0}}
    directions = {"quality": "max", "memory": "min"}
    assert decision.normalised_table(table, directions)["c"] == pytest.approx({"quality": 0.5, "memory": 0.5})
    scores = decision.weighted_scores(table, {"quality": 3, "memory": 1}, directions)
    assert scores == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.5})
    assert decision.choose(scores) == "a"
    rows = decision.sensitivity(table, [3, 1], directions)
    flips = {(r["criterion"], r["change"]): r["winner"] for r in rows}
    assert flips[("quality", "drop")] == "b" and flips[("memory", "drop")] == "a"
    assert all(r["changed"] == (r["winner"] != "a") for r in rows)


def test_bad_input_gets_clear_errors(profile):
    with pytest.raises(ValueError, match=r"unknown method 'lora2'.*expected one of full, lora"):
        registry.get_method("lora2")
    with pytest.raises(ValueError, match=r"unknown method"):
        compare.compare_methods(["lora", "nope"], profile, "unused")
    with pytest.raises(ValueError, match=r"r \(the adapter rank.*positive integer, got 0"):
        registry.build("lora", profile, r=0)
    with pytest.raises(ValueError, match=r"r \(the adapter rank"):
        registry.peft_config("dora", profile, r=0)
    with pytest.raises(ValueError, match="bottleneck must be a positive size"):
        bottleneck.BottleneckAdapter(8, 0)
    table = {"a": {c: 1.0 for c in decision.CRITERIA}}
    with pytest.raises(ValueError, match=r"weights has 2 values but there are 6 criteria \(quality, memory"):
        decision.weighted_scores(table, [1, 2])
    with pytest.raises(ValueError, match=r"missing \['checkpoint'.*unknown \['speed'\]"):
        decision.weighted_scores(table, {"quality": 1, "speed": 1})
    with pytest.raises(ValueError, match="weights must be >= 0"):
        decision.weighted_scores(table, [1, -1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"table\['b'\] has criteria"):
        decision.weighted_scores({**table, "b": {"quality": 1.0}}, [1] * 6)
    with pytest.raises(ValueError, match="combination_type must be"):
        combine.combine(None, ["a"], [1.0], "mean")
    with pytest.raises(ValueError, match="weights has 1 values but adapters has 2"):
        combine.combine(None, ["a", "b"], [1.0], "cat")
    with pytest.raises(FileNotFoundError, match="not a bottleneck-adapter checkpoint"):
        bottleneck.load_bottleneck(None, "/nonexistent-dir")
    for points in (0, 4, 1.5):
        with pytest.raises(ValueError, match=r"points must be an integer from 1 to 3 \(the size of lora's"):
            registry.learning_rates("lora", profile, points)


def test_sweep_keeps_the_top_of_each_grid(profile):
    for name, method in registry.METHODS.items():
        grid = registry.learning_rates(name, profile)
        assert grid == sorted(grid) and len(grid) == len(method.lr_factors), name
        assert registry.learning_rates(name, profile, 2) == grid[-2:], name
    # the profile says how many points; too few steps to compare rates (grading sizes) -> one run
    assert compare.CompareBudget.from_profile(profile.replace(sweep_steps=20)).sweep_points == profile.sweep_points
    assert compare.CompareBudget.from_profile(profile.replace(sweep_steps=1)).sweep_points == 1


def test_quality_falls_back_to_validation_loss_only_when_f1_cannot_rank():
    from types import SimpleNamespace as R

    tied = [R(method="a", intent_f1=0.0, val_loss=1.0), R(method="b", intent_f1=0.0, val_loss=2.0)]
    name, values = decision.quality_measure(tied)
    assert name.startswith("exp(-validation loss)") and values["a"] > values["b"]
    assert values["a"] == pytest.approx(math.exp(-1.0))
    ranked = [R(method="a", intent_f1=0.2, val_loss=1.0), R(method="b", intent_f1=0.5, val_loss=2.0)]
    assert decision.quality_measure(ranked) == ("intent macro-F1", {"a": 0.2, "b": 0.5})


def test_methods_carry_their_behaviour_no_function_branches_on_a_name():
    """A new method is one row of registry.METHODS: no `name == "..."` / `name in (...)` anywhere in
    the methods package (issue 23, item 5)."""
    import ast
    from pathlib import Path

    package = Path(registry.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id in ("name", "method"):
                consts = [c for c in node.comparators if isinstance(c, (ast.Constant, ast.Tuple, ast.List, ast.Set))]
                assert not consts, f"{path.name} line {node.lineno} branches on a method's name"
    assert {m.name for m in registry.METHODS.values() if m.trains_base} == {"full", "hft"}
    assert all(m.peft != (m.attach is not None) for m in registry.METHODS.values()), "peft config or attach, one each"
