"""The `ci` model: a tiny Qwen2-architecture causal LM built locally, deterministically, in about a minute.

Why not a real checkpoint?  CI and graders have no model hub, and a 150k-token
vocabulary makes every CPU step slow.  So we train a small byte-level BPE tokenizer
on the course corpus, give it Qwen's ChatML special tokens and a ChatML chat
template, and build a `Qwen2ForCausalLM` with random (seeded) weights from a
config.  The same data, LoRA and QLoRA code then runs here and on real Qwen models.

A model with random weights knows nothing, which would make "before vs after
fine-tuning" meaningless.  So the build also *pretrains* it for about a minute
(full-parameter, seeded) on the training messages as plain chats: customer
message -> prose reply that names the topic first, e.g.
``[delivery_complaint] Xin lỗi quý khách ...``, and on JSON archive records of replies
and their labels (see `_archive_records`: without them LoRA cannot write half of the
answer's tokens).  Like a real instruct model, the `ci` base then knows the language,
what a message is about, JSON and how to answer politely, but it has never been asked
to route: given the system prompt it answers in prose, never in the routing JSON.  That
is what the course's LoRA fine-tuning teaches it (issue 7: valid JSON 0.00 -> 1.00,
validation intent macro-F1 0.00 -> 0.78 in Day 2's 200 steps).

The result is cached under ``$LORAWEEK_CACHE`` (default ``~/.cache/loraweek``),
keyed by a hash of everything that goes into it, so a rebuild happens only when
the recipe or the corpus changes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from loraweek.cache import build_once, cache_root

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# Qwen2.5's template minus its default system prompt: ChatML, one turn per block.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

TOKENIZER_VOCAB = 4096
MODEL_CONFIG = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                    rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
SEED = 0
PRETRAIN = dict(schedule=("topic", "topic", "full"), batch_size=16, learning_rate=4e-3, max_len=192, archive_every=4)
RECIPE_VERSION = 4  # bump when the build changes in a way the hash below cannot see


_MEMO: dict = {}  # (train file, its mtime and size) -> (corpus, recipe hash)


def _corpus_and_hash() -> tuple[list[str], str]:
    """The corpus and the hash that names the cached model, computed once per process and
    training file: every model and tokenizer load asks for the name (0.3 s each time otherwise)."""
    from loraweek.data import schema

    path = Path(schema.DATA_DIR) / "train.jsonl"
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _MEMO:
        corpus = _corpus()
        _MEMO.clear()
        _MEMO[key] = (corpus, _recipe_hash(corpus))
    return _MEMO[key]


def _corpus() -> list[str]:
    """Texts the tokenizer learns from: what the model will read and write on this task."""
    from loraweek.data import chat, schema

    texts = [chat.SYSTEM_PROMPT]
    for ex in schema.load_split("train"):
        texts += [chat.scrub_message(ex.message), ex.reply, ex.target_json()]
    return texts


def _recipe_hash(corpus: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([RECIPE_VERSION, TOKENIZER_VOCAB, MODEL_CONFIG, PRETRAIN, SEED, CHATML_TEMPLATE]).encode())
    for text in corpus:
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def ci_model_hash() -> str:
    """The hash naming the cached ci model (changes whenever its recipe or corpus does)."""
    return _corpus_and_hash()[1]


def train_tokenizer(corpus: list[str]):
    """Byte-level BPE with Qwen2's own normalizer and pre-tokenizer.

    Byte-level, so any UTF-8 text (Vietnamese included) is representable.  Qwen2's
    pipeline (NFC, its split regex, digits one by one), so that `AutoTokenizer`,
    which reloads a qwen2 model's tokenizer as `Qwen2Tokenizer`, rebuilds exactly
    the tokenizer we trained.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, unk_token=None,
        chat_template=CHATML_TEMPLATE, model_max_length=MODEL_CONFIG["max_position_embeddings"],
        padding_side="right",
    )


def _check_reload(folder: Path, tokenizer, corpus: list[str]) -> None:
    """The saved tokenizer must encode exactly like the trained one (see train_tokenizer)."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(folder)
    for text in corpus[:50]:
        if reloaded(text)["input_ids"] != tokenizer(text)["input_ids"]:
            raise RuntimeError(f"ci tokenizer does not survive save/reload on {text[:60]!r}")


def build_model(tokenizer):
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=None,
                         eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
                         pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT), **MODEL_CONFIG)
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    # Like Qwen's instruct models: stop on end-of-turn *or* end-of-text.
    model.generation_config = GenerationConfig(
        eos_token_id=[config.eos_token_id, config.pad_token_id], pad_token_id=config.pad_token_id,
        do_sample=False)
    return model


def _pretraining_chats() -> list[list[dict]]:
    from loraweek.data import chat, schema

    return [[{"role": "user", "content": chat.scrub_message(ex.message)},
             {"role": "assistant", "content": f"[{ex.intent}] {ex.reply}"}]
            for ex in schema.load_split("train")]


def _archive_records() -> list[str]:
    """Plain JSON documents, *not* chats: a reply, then its labels, keys in another order than the
    routing answer's and never next to a message.

    Why: a real base model has read plenty of JSON and every token of its vocabulary.  Without
    these documents half of the routing answer's tokens (``{"``, ``":``, label spellings, a reply's
    first word after a quote) never occur in pretraining, so their tied embeddings stay at their
    random initialisation, and LoRA, which cannot change embeddings, can hardly make the model
    write them: measured in issue 7, LoRA's loss stalled at 2.5 where full fine-tuning reached
    0.25.  These records teach the tokens and JSON's syntax; the chats teach what a message is
    about; mapping a message to the routing JSON is still what fine-tuning teaches.
    (Labels first and the reply last, measured too, cost validation intent F1 0.78 -> 0.39:
    ``{"language"`` then competes with the answer's ``{"intent"``.)"""
    from loraweek.data import schema

    return [json.dumps({"reply": ex.reply, "language": ex.language, "intent": ex.intent,
                        "priority": ex.priority}, ensure_ascii=False)
            for ex in schema.load_split("train")[::PRETRAIN["archive_every"]]]


def pretraining_texts(tokenizer) -> dict[str, list[str]]:
    """The documents of each kind of pretraining epoch (see `pretrain`)."""
    chats = [tokenizer.apply_chat_template(c, tokenize=False) for c in _pretraining_chats()]
    return {"full": chats + [record + ENDOFTEXT for record in _archive_records()],
            "topic": [c[: c.index("] ", c.rindex(IM_START + "assistant")) + 1] for c in chats]}


def _batches(rows: list[list[int]]) -> list[list[list[int]]]:
    rows = sorted(rows, key=len)  # similar lengths together: little padding
    return [rows[i:i + PRETRAIN["batch_size"]] for i in range(0, len(rows), PRETRAIN["batch_size"])]


def pretrain(model, tokenizer, verbose: bool = True) -> list[float]:
    """A minute of seeded full-parameter training, epoch by epoch as `PRETRAIN["schedule"]` says:

    - ``full``: message -> "[topic] prose reply" chats, plus the JSON archive records
      (`_archive_records`);
    - ``topic``: the same chats cut right after the topic tag.  The replies are 60 fixed
      templates, learnt in one epoch; what takes longer is reading a message's topic, and these
      epochs spend the build's time on it at half the tokens.
    """
    batches = {kind: _batches([row[: PRETRAIN["max_len"]] for row in tokenizer(texts, add_special_tokens=False)["input_ids"]])
               for kind, texts in pretraining_texts(tokenizer).items()}
    schedule = PRETRAIN["schedule"]
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["learning_rate"])
    total = sum(len(batches[kind]) for kind in schedule)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, PRETRAIN["learning_rate"], total_steps=total, pct_start=0.1)
    pad = tokenizer.pad_token_id
    model.train()
    losses = []
    for kind in schedule:
        for b in torch.randperm(len(batches[kind]), generator=gen).tolist():
            rows = batches[kind][b]
            width = max(map(len, rows))
            x = torch.tensor([row + [pad] * (width - len(row)) for row in rows])
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
            loss = model(input_ids=x, attention_mask=mask, labels=x.masked_fill(mask == 0, -100)).loss
            loss.backward()
            opt.step(); sched.step(); opt.zero_grad()
            losses.append(loss.item())
    model.eval()
    if verbose:
        print(f"  pretrained {total} steps ({' + '.join(schedule)} epochs): "
              f"loss {losses[0]:.2f} -> {sum(losses[-10:]) / 10:.2f}")
    return losses


def ensure_ci_model(verbose: bool = True) -> Path:
    """Return the folder of the cached `ci` model, building it first if needed (once, even with
    parallel processes: `loraweek.cache.build_once`)."""
    corpus, recipe_hash = _corpus_and_hash()
    target = cache_root() / f"tiny-qwen2-ci-{recipe_hash}"

    def build(folder: Path) -> None:
        tokenizer = train_tokenizer(corpus)
        model = build_model(tokenizer)
        pretrain(model, tokenizer, verbose)
        tokenizer.save_pretrained(folder)
        model.save_pretrained(folder)
        _check_reload(folder, tokenizer, corpus)

    return build_once(target, lambda t: (t / "config.json").exists() and (t / "tokenizer.json").exists(), build,
                      f"building the ci model (once, about a minute) in {target} ..." if verbose else None)
