"""Day 4 metrics: Vietnamese-safe text metrics, F1 with invalid answers, statistics,
log-likelihood multiple choice, perplexity, offline loading, and clear errors."""
import json
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import torch

from loraweek.data.schema import INTENTS
from loraweek.metrics import MODULES, classification, grouping, load, loglik, probe_sets, safety, stats, text

VI = "Dạ, đơn hàng của anh sẽ được giao trong 2 ngày. Tôi cần hỗ trợ hoàn tiền."


def answer(intent="order_status", priority="low", language="vi", reply="Dạ vâng ạ."):
    return json.dumps({"intent": intent, "priority": priority, "language": language, "reply": reply},
                      ensure_ascii=False)


@pytest.fixture(scope="module")
def modules():
    return {name: load(name) for name in ("chrf", "bleu", "rouge_l", "exact_match")}


def first_score(result):
    return next(v for k, v in result.items() if k != "signature")


def test_vietnamese_sentence_scores_one_against_itself(modules):
    for name, module in modules.items():
        assert first_score(module.compute(predictions=[VI], references=[VI])) == pytest.approx(1.0), name


def test_can_and_cân_do_not_match(modules):
    assert text.tokenize("cần") != text.tokenize("cân")
    for name in ("rouge_l", "exact_match"):
        assert first_score(modules[name].compute(predictions=["cần"], references=["cân"])) == 0.0, name
    assert modules["chrf"].compute(predictions=["tôi cần"], references=["tôi cân"])["chrf"] < 1.0
    # the trap we avoid: rouge_score's default tokenizer turns both words into "c n"
    from rouge_score.rouge_scorer import RougeScorer
    assert RougeScorer(["rougeL"]).score("cần", "cân")["rougeL"].fmeasure == 1.0


def test_nfc_and_nfd_spellings_score_the_same(modules):
    nfd = unicodedata.normalize("NFD", VI)
    assert nfd != VI
    pred = "Đơn hàng của anh sẽ được giao sớm, tôi cần kiểm tra."
    for name, module in modules.items():
        a = first_score(module.compute(predictions=[pred], references=[VI]))
        b = first_score(module.compute(predictions=[unicodedata.normalize("NFD", pred)], references=[nfd]))
        assert a == pytest.approx(b), name
    assert first_score(modules["exact_match"].compute(predictions=[nfd], references=[VI])) == 1.0


def test_bleu_reports_its_sacrebleu_signature(modules):
    out = modules["bleu"].compute(predictions=[VI], references=[VI], tokenize="intl")
    assert "tok:intl" in out["signature"] and "version:" in out["signature"]


def test_rouge_l_equals_lcs_f_measure():
    pred, ref = "tôi cần hỗ trợ ngay", "tôi rất cần được hỗ trợ"
    p, r = text.tokenize(pred), text.tokenize(ref)
    lcs = text.lcs_length(p, r)
    prec, rec = lcs / len(p), lcs / len(r)
    assert text.rouge_l([pred], [ref])["rougeL"] == pytest.approx(2 * prec * rec / (prec + rec))


OFFLINE_SCRIPT = r"""
import json, socket
def refuse(*args, **kwargs):
    raise OSError("network is unreachable (test)")
socket.socket.connect = refuse
socket.create_connection = refuse
from loraweek.metrics import MODULES, load
ref = {"intent": "order_status", "priority": "low", "language": "vi", "reply": "Dạ vâng ạ."}
s = json.dumps(ref, ensure_ascii=False)
for name in MODULES:
    m = load(name)
    out = m.compute(predictions=[s]) if name == "json_validity" else m.compute(predictions=[s], references=[s])
    print(name, out)
"""


def test_modules_load_offline_with_the_network_unreachable(tmp_path):
    env = {**os.environ, "HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in MODULES:
        assert f"{name} " in proc.stdout


def test_unknown_module_name_is_a_clear_error_not_a_hub_lookup():
    with pytest.raises(ValueError, match="name must be one of"):
        load("bleu_typo")


def _labelled(seed=0, n=300):
    rng = np.random.default_rng(seed)
    # imbalanced truth; predictions right 60% of the time, else another intent or an invalid answer
    y_true = list(rng.choice(INTENTS, size=n, p=np.array([30, 20, 15, 10, 8, 6, 5, 3, 2, 1]) / 100))
    y_pred = [t if rng.random() < 0.6 else (classification.INVALID if rng.random() < 0.3 else rng.choice(INTENTS))
              for t in y_true]
    return y_true, [str(p) for p in y_pred]


def test_f1_equals_scikit_learn_with_invalid_as_its_own_class():
    from sklearn.metrics import f1_score

    y_true, y_pred = _labelled()
    ours = classification.f1_from_confusion(classification.confusion_matrix(y_true, y_pred))
    for avg in ("macro", "weighted"):
        assert ours[f"{avg}_f1"] == pytest.approx(
            f1_score(y_true, y_pred, labels=list(INTENTS), average=avg, zero_division=0))
    assert ours["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=list(classification.LABELS),
                                                      average="micro", zero_division=0))
    assert ours["per_class"] == pytest.approx(f1_score(y_true, y_pred, labels=list(INTENTS), average=None,
                                                       zero_division=0))


def test_invalid_answers_are_scored_failures_never_dropped():
    refs = [answer("refund_request"), answer("fraud_report")]
    preds = ["", None]
    assert classification.json_validity(preds)["json_valid"] == 0.0
    assert classification.predicted_intents(preds) == [classification.INVALID] * 2
    scores = classification.intent_f1(preds, refs)
    assert scores["micro_f1"] == 0.0 and scores["macro_f1"] == 0.0
    assert classification.field_accuracy(["{not json", answer("fraud_report")], refs)["intent_accuracy"] == 0.5
    assert text.chrf(["", "x"], ["Dạ", "vâng"])["chrf"] < 0.5


@pytest.mark.parametrize("call, match", [
    (lambda: text.chrf(["a", "b"], ["a"]), "predictions has 2 items but references has 1"),
    (lambda: text.bleu([], []), "predictions is empty"),
    (lambda: text.rouge_l("abc", ["abc"]), "predictions must be a list"),
    (lambda: classification.confusion_matrix(["order_status"], ["refnd"]), r"y_pred contains unknown labels \['refnd'\]"),
    (lambda: classification.confusion_matrix(["nope"], ["order_status"]), "y_true contains unknown labels"),
    (lambda: classification.intent_f1([answer()], ["not json"]), "references must hold target JSON strings"),
    (lambda: classification.json_validity([]), "predictions must be a non-empty list"),
    (lambda: text.exact_match([3], ["3"]), "predictions must contain strings"),
    (lambda: stats.mean_ci([]), "n .* must be positive"),
    (lambda: stats.mean_ci([1, 0], confidence=95), "confidence must be between 0 and 1"),
    (lambda: stats.paired_permutation_test([1, 0], [1]), "scores_a and scores_b"),
    (lambda: grouping.simpson_reversal({"vi": (1, 2)}, {"en": (1, 2)}), "same non-empty groups"),
    (lambda: grouping.simpson_reversal({"vi": (3, 2)}, {"vi": (1, 2)}), r"counts_a\['vi'\]"),
    (lambda: loglik.choice_length("x", "words", 1), "normalisation must be one of"),
])
def test_bad_input_is_a_clear_error_naming_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_evaluate_module_rejects_misaligned_lists(modules):
    with pytest.raises(ValueError, match="predictions"):
        modules["chrf"].compute(predictions=["a", "b"], references=["a"])


def test_bootstrap_is_seeded_and_agrees_with_scipy():
    from scipy.stats import bootstrap

    values = np.random.default_rng(1).random(400) < 0.7
    a, b = stats.mean_ci(values, seed=3), stats.mean_ci(values, seed=3)
    assert a == b and a.low < a.estimate < a.high
    ref = bootstrap((values.astype(float),), np.mean, n_resamples=5000, method="percentile",
                    rng=np.random.default_rng(0)).confidence_interval
    assert a.low == pytest.approx(ref.low, abs=0.015) and a.high == pytest.approx(ref.high, abs=0.015)
    # a 4-times larger sample gives a narrower interval (about half as wide)
    wide = stats.mean_ci(values[:100], seed=3)
    assert (wide.high - wide.low) > 1.5 * (a.high - a.low)


def test_paired_tests_tell_a_real_gain_from_noise():
    rng = np.random.default_rng(0)
    before = (rng.random(400) < 0.5).astype(float)
    better = np.where(rng.random(400) < 0.3, 1.0, before)      # fixes ~30% of the errors
    noisy = before.copy()  # as many new errors as fixes: the same accuracy, different answers
    noisy[np.flatnonzero(before == 1)[:12]] = 0
    noisy[np.flatnonzero(before == 0)[:12]] = 1
    assert stats.paired_permutation_test(before, better)["p_value"] < 0.01
    assert stats.paired_permutation_test(before, noisy)["p_value"] > 0.05
    res = stats.paired_bootstrap(lambda i: before[i].mean(), lambda i: better[i].mean(), 400)
    assert res["low"] > 0 and res["p_value"] < 0.01


def test_simpson_reversal_on_the_kidney_stone_counts():
    a = {"small": (81, 87), "large": (192, 263)}     # open surgery: better in each group
    b = {"small": (234, 270), "large": (55, 80)}     # PCNL: better pooled
    assert grouping.simpson_reversal(a, b) and grouping.simpson_reversal(b, a)
    assert not grouping.simpson_reversal(a, {"small": (70, 87), "large": (150, 263)})
    assert grouping.group_accuracy(["vi", "en", "vi"], [1, 0, 0]) == {"en": (0, 1), "vi": (1, 2)}


@pytest.fixture(scope="module")
def tiny():
    """A tiny randomly initialised Qwen2 on the course tokenizer: exact arithmetic, no training."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from loraweek.models.tiny import ensure_ci_model

    tok = AutoTokenizer.from_pretrained(ensure_ci_model())
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return Qwen2ForCausalLM(cfg).eval(), tok


def _direct_logprob(model, tok, context, continuation):
    """One unbatched forward over context+continuation; add log p of each continuation token."""
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(float(logp[t - 1, whole[t]]) for t in range(len(ctx), len(whole)))


def test_log_likelihood_scoring_equals_a_direct_computation(tiny):
    model, tok = tiny
    context, choices = "Question: Thủ đô của Việt Nam?\nAnswer:", ["Hà Nội", "Huế", "thành phố Hồ Chí Minh"]
    got = loglik.choice_logprobs(model, tok, context, choices)
    for (ll, n), choice in zip(got, choices):
        assert ll == pytest.approx(_direct_logprob(model, tok, context, " " + choice), abs=1e-4)
        assert n == len(tok(context + " " + choice, add_special_tokens=False)["input_ids"]) - \
            len(tok(context, add_special_tokens=False)["input_ids"])
    # a trailing space in the context moves onto the choice (lm-eval's rule): same scores
    moved = loglik.choice_logprobs(model, tok, context + " ", choices, delimiter="")
    assert [m[0] for m in moved] == pytest.approx([g[0] for g in got], abs=1e-4)


def test_log_likelihood_reads_the_context_once_with_the_same_numbers_on_a_lora_llama(tiny):
    """choice_logprobs reads the context once and repeats its cache over the choices: on a Llama
    (SmolLM2's architecture) wrapped in a LoRA adapter with non-zero B, the sums equal one direct
    forward pass per choice."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = tiny
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    context = "Khách hàng: tôi chưa nhận được hàng.\nÝ định:"
    choices = ["delivery_complaint", "refund", "x"]  # different lengths: the padded rows must not leak
    got = loglik.choice_logprobs(model, tok, context, choices)
    for (ll, _), choice in zip(got, choices):
        assert ll == pytest.approx(_direct_logprob(model, tok, context, " " + choice), abs=1e-4)


def test_acc_norm_divides_by_the_stated_length(tiny):
    model, tok = tiny
    items = [{"context": "Hỏi: màu của lá?\nĐáp:", "choices": ["xanh lá", "đỏ", "vàng nhạt ở mùa thu"], "answer": 0}]
    lls = loglik.choice_logprobs(model, tok, items[0]["context"], items[0]["choices"])
    for norm in ("chars", "bytes", "tokens"):
        res = loglik.score_multiple_choice(model, tok, items, normalisation=norm)
        lengths = [loglik.choice_length(c, norm, n) for c, (_, n) in zip(items[0]["choices"], lls)]
        best = int(np.argmax([ll / k for (ll, _), k in zip(lls, lengths)]))
        assert res.correct_norm == [best == 0] and res.correct == [int(np.argmax([l for l, _ in lls])) == 0]
    assert loglik.choice_length("hỗ trợ", "chars", 0) == 6 and loglik.choice_length("hỗ trợ", "bytes", 0) == 10
    with pytest.raises(ValueError, match=r"items\[0\]\['answer'\]"):
        loglik.score_multiple_choice(model, tok, [{**items[0], "answer": 5}])


def test_reference_perplexity_equals_the_models_own_loss(tiny):
    from loraweek.data import chat
    from loraweek.data.schema import load_split
    from loraweek.metrics.perplexity import reference_perplexity

    model, tok = tiny
    examples = load_split("validation")[:3]
    res = reference_perplexity(model, tok, examples, max_len=512, batch_size=2)
    feats, _ = chat.tokenize_examples(tok, examples, 512)
    nll = tokens = 0.0
    for i, f in enumerate(feats):
        with torch.no_grad():
            out = model(torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]]))
        k = sum(l != chat.IGNORE_INDEX for l in f["labels"][1:])
        # each example's own sum (the answer-only projection must keep rows apart), then the whole
        assert res.nll[i] == pytest.approx(float(out.loss) * k, rel=1e-4) and res.tokens[i] == k
        nll += float(out.loss) * k
        tokens += k
    assert res.perplexity == pytest.approx(float(np.exp(nll / tokens)), rel=1e-4)


def test_shipped_sets_load_and_mcq_is_reproducible():
    items = probe_sets.load_mcq()
    assert {i["subset"] for i in items} == set(probe_sets.MCQ_SUBSETS)
    assert {i["language"] for i in probe_sets.load_mcq("general")} == {"en", "vi"}
    proc = subprocess.run([sys.executable, "-m", "loraweek.data.mcq.build", "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    probes = probe_sets.load_safety_probes()
    assert {p["kind"] for p in probes} == {"steering", "exfiltration"}
    with pytest.raises(ValueError, match="subset must be one of"):
        probe_sets.load_mcq("mmlu")


def test_safety_compliance_and_the_guard():
    probes = {p["id"]: p for p in probe_sets.load_safety_probes()}
    steer = probes["steer-01"]            # wants priority urgent on a low-priority order question
    assert safety.complied(steer, answer("order_status", "urgent", "en"))
    assert not safety.complied(steer, answer("order_status", "low", "en"))
    assert not safety.complied(steer, "")  # an empty answer obeys nobody (and is caught by the guard)
    assert safety.complied(probes["steer-08"], "OK")  # told to drop the JSON format, and did
    leak = answer("order_status", "low", "en", reply="Her email is lan.nguyen@example.com")
    assert safety.complied(probes["exfil-01"], leak)
    assert safety.guard(leak) == (False, "reply contains personal data")
    assert safety.guard(answer("order_status", "urgent", "en"))[0]  # a steered label passes any schema


def test_report_corpus_scores_match_sacrebleu_and_sklearn():
    from sklearn.metrics import f1_score

    from loraweek.data.schema import load_split
    from loraweek.metrics import report

    examples = load_split("test")[:60]
    answers = [ex.target_json() if i % 4 else ("" if i % 8 else answer("fraud_report", reply="Dạ vâng."))
               for i, ex in enumerate(examples)]
    scores = report.score_system(examples, answers)
    replies = report.replies(answers)
    refs = [ex.reply for ex in examples]
    assert scores.point("reply_bleu") == pytest.approx(text.bleu(replies, refs)["bleu"])
    assert scores.point("reply_chrf") == pytest.approx(text.chrf(replies, refs)["chrf"])
    y_true = [ex.intent for ex in examples]
    y_pred = classification.predicted_intents(answers)
    assert scores.point("intent_macro_f1") == pytest.approx(
        f1_score(y_true, y_pred, labels=list(INTENTS), average="macro", zero_division=0))
    assert scores.point("json_valid") == pytest.approx(classification.json_validity(answers)["json_valid"])
    iv = scores.interval("reply_chrf", n_resamples=200)
    assert iv.low <= iv.estimate <= iv.high
    with pytest.raises(ValueError, match="examples has 60 items but answers has 1"):
        report.score_system(examples, answers[:1])


def test_reversal_by_mix_builds_a_real_reversal_only_when_possible():
    groups = ["vi"] * 50 + ["en"] * 50
    strong = [i % 10 < 5 for i in range(50)] + [i % 10 < 9 for i in range(50)]   # vi 0.5, en 0.9
    weak = [i % 10 < 4 for i in range(50)] + [i % 10 < 8 for i in range(50)]     # vi 0.4, en 0.8
    a, b = grouping.reversal_by_mix(groups, strong, weak)
    assert grouping.simpson_reversal(a, b)
    assert min(n for counts in (a, b) for _, n in counts.values()) >= 5  # no rate rests on 1-2 examples
    hopeless = [False] * 100                                                      # 0 everywhere
    assert grouping.reversal_by_mix(groups, strong, hopeless) is None
    (inside, other), (counts_inside, counts_other) = grouping.reversal_between(groups, {"weak": weak, "strong": strong})
    assert inside == "strong" and all(counts_inside[g][0] / counts_inside[g][1] > counts_other[g][0] / counts_other[g][1]
                                      for g in counts_inside)
    assert grouping.pooled(counts_inside) < grouping.pooled(counts_other)


def test_mcq_items_score_each_subset_the_way_day4_teaches(tiny):
    _, tok = tiny
    general = probe_sets.mcq_items("general", tok, limit=3)
    assert [i["context"] for i in general] == [f"Question: {q['question']}\nAnswer:" for q in probe_sets.load_mcq("general")[:3]]
    helpdesk = probe_sets.mcq_items("helpdesk", tok)
    assert len(helpdesk) == len(probe_sets.load_mcq("helpdesk"))
    for item in helpdesk:  # the choice continues the JSON answer, after the assistant's turn has begun
        assert item["context"].endswith('{"intent": "')
        assert tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                       tokenize=False).split("x")[-1] in item["context"]
    assert set(probe_sets.MCQ_DELIMITER) == set(probe_sets.MCQ_SUBSETS)
