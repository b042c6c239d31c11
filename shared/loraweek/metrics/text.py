"""Reply similarity on Vietnamese and English: chrF, BLEU, ROUGE-L, exact match.

Three traps this module avoids (see the Day 4 notebook):
- Unicode normalisation: "ầ" can be one code point (NFC) or three (NFD).  Character
  metrics count code points, so both sides are NFC-normalised first.
- rouge_score's default tokenizer keeps only [a-z0-9]: "cần" and "cân" both become
  "c n".  We tokenize with Python's Unicode-aware \\w instead, and never stem (Porter is English).
- BLEU is only comparable with its settings: we use sacrebleu and return its signature.
"""
from __future__ import annotations

import re
import unicodedata

from loraweek.metrics._checks import as_text, check_pair

WORD = re.compile(r"\w+")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def tokenize(text: str) -> list[str]:
    """NFC, lower-case, Unicode word characters: 'Tôi CẦN hỗ trợ!' -> ['tôi', 'cần', 'hỗ', 'trợ']."""
    return WORD.findall(nfc(as_text(text, "text")).lower())


class UnicodeTokenizer:
    """What rouge_score's RougeScorer(tokenizer=...) expects: an object with .tokenize()."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def _texts(predictions, references):
    predictions, references = check_pair(predictions, references)
    return ([nfc(as_text(p, "predictions")) for p in predictions],
            [nfc(as_text(r, "references")) for r in references])


def chrf(predictions, references) -> dict:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2) on NFC text, scaled to 0..1."""
    from sacrebleu.metrics import CHRF

    preds, refs = _texts(predictions, references)
    metric = CHRF()
    return {"chrf": metric.corpus_score(preds, [refs]).score / 100, "signature": str(metric.get_signature())}


def sentence_chrf(predictions, references) -> list[float]:
    """chrF of each prediction against its reference (0..1): per-example scores for bootstrap."""
    from sacrebleu.metrics import CHRF

    preds, refs = _texts(predictions, references)
    metric = CHRF()
    return [metric.sentence_score(p, [r]).score / 100 for p, r in zip(preds, refs)]


def bleu(predictions, references, tokenize: str = "13a") -> dict:
    """Corpus BLEU through sacrebleu (0..1).  13a keeps Vietnamese diacritics and splits on
    spaces, so this is syllable-level BLEU; 'intl' also splits Unicode punctuation."""
    from sacrebleu.metrics import BLEU

    preds, refs = _texts(predictions, references)
    metric = BLEU(tokenize=tokenize)
    return {"bleu": metric.corpus_score(preds, [refs]).score / 100, "signature": str(metric.get_signature())}


def sentence_rouge_l(predictions, references) -> list[float]:
    """ROUGE-L F-measure of each pair with the Unicode tokenizer (rouge_score, no stemming)."""
    from rouge_score.rouge_scorer import RougeScorer

    preds, refs = _texts(predictions, references)
    scorer = RougeScorer(["rougeL"], use_stemmer=False, tokenizer=UnicodeTokenizer())
    # rouge_score takes the reference first: score(target, prediction)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)]


def rouge_l(predictions, references) -> dict:
    """Mean ROUGE-L F over the pairs: no bootstrap aggregator, so the same input gives the same number."""
    scores = sentence_rouge_l(predictions, references)
    return {"rougeL": sum(scores) / len(scores)}


def lcs_length(a: list, b: list) -> int:
    """Longest common subsequence of two token lists (dynamic programming, O(len(a)·len(b)))."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def exact_match(predictions, references) -> dict:
    """Share of predictions equal to their reference after NFC and trimming spaces."""
    preds, refs = _texts(predictions, references)
    return {"exact_match": sum(p.strip() == r.strip() for p, r in zip(preds, refs)) / len(preds)}
