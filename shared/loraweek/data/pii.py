"""Reference PII scrubber for the helpdesk data (fake PII only, but treat it as real).

Four kinds, each replaced by a fixed placeholder. The patterns run in a fixed
order on text where earlier matches are already masked out:

    email -> card -> account -> phone

Why this order: an email's local part may hold digits ("an0912345678@..."),
a 16-digit card contains 10-digit runs that look like accounts or phones, and
an account number contains 10-digit runs that look like phones. Running the
longer, more specific shapes first means the shorter ones never eat pieces of them.

Not PII (must survive): order codes "DH123456", amounts "250.000đ" /
"1,500,000 VND", dates "12/3", ordinary small numbers.
"""
import re

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "account": "[ACCOUNT]", "card": "[CARD]"}

# Plain user@domain.tld; no quoting or IP literals, which real customers never type.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# 16 digits in four groups of 4, separated by one space/dash or nothing
# ("4111 1111 1111 1111", "4111-1111-...", "4111111111111111").
# \b on both sides so it never starts inside an order code like "DH1234...".
CARD = re.compile(r"\b\d{4}(?:[ -]?\d{4}){3}\b")

# Either a prefixed customer/loan id ("ACC-00012345") or a bare run of 10-16
# digits (bank account numbers). The bare run must not be a 10-digit VN mobile
# (0 + 3/5/7/8/9 + 8 digits: that is a phone) nor the digits after "+84".
# Amounts use thousand separators and order codes are glued to "DH", so \b
# keeps both out.
ACCOUNT = re.compile(r"\bACC-\d{6,12}\b|(?<!\+)\b(?!0[35789]\d{8}\b)\d{10,16}\b")

# Vietnamese mobile: "0" or "+84" then 9 digits starting 3/5/7/8/9, allowing a
# single space, dot or dash between digits ("0912 345 678", "0987-654-321",
# "+84 912345678"). The leading [35789] keeps dates like "05/03" and amounts out.
PHONE = re.compile(r"(?<![\d+])(?:\+84[ .-]?|0)[35789]\d(?:[ .-]?\d){7}(?!\d)")

PATTERNS = (("email", EMAIL), ("card", CARD), ("account", ACCOUNT), ("phone", PHONE))


def _spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every PII match, applying PATTERNS in order."""
    spans = []
    masked = text
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(masked):
            spans.append((m.start(), m.end(), kind))
        # blank out what this kind took so later (looser) kinds cannot re-match it;
        # same length keeps offsets valid for the original text
        masked = pattern.sub(lambda m: " " * len(m.group()), masked)
    return sorted(spans)


def find_pii(text: str) -> list[tuple[str, str]]:
    """[(kind, matched text)] in order of appearance."""
    return [(kind, text[a:b]) for a, b, kind in _spans(text)]


def scrub_pii(text: str) -> str:
    """Replace every PII occurrence by its placeholder. Idempotent."""
    out, pos = [], 0
    for a, b, kind in _spans(text):
        out.append(text[pos:a])
        out.append(PLACEHOLDERS[kind])
        pos = b
    out.append(text[pos:])
    return "".join(out)
