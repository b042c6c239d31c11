"""Concrete cases for the reference PII scrubber (shared/loraweek/data/pii.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))  # no-op if already importable
from loraweek.data.pii import PLACEHOLDERS, find_pii, scrub_pii  # noqa: E402

CASES = [  # (text, expected scrub, expected kinds in order)
    ("Email của mình là nguyen.van.a87@gmail.com nhé.", "Email của mình là [EMAIL] nhé.", ["email"]),
    ("My email is john.smith@example.com.", "My email is [EMAIL].", ["email"]),
    ("SĐT liên hệ: 0912 345 678.", "SĐT liên hệ: [PHONE].", ["phone"]),
    ("Gọi mình số +84 912345678 hoặc 0987-654-321", "Gọi mình số [PHONE] hoặc [PHONE]", ["phone", "phone"]),
    ("You can reach me at +84912345678 or 0356.212.962.", "You can reach me at [PHONE] or [PHONE].", ["phone", "phone"]),
    ("Số tài khoản TK 1234567890 tại Vietcombank.", "Số tài khoản TK [ACCOUNT] tại Vietcombank.", ["account"]),
    ("Please refund to account 19036512345018 at BIDV.", "Please refund to account [ACCOUNT] at BIDV.", ["account"]),
    ("Mã khách hàng ACC-00012345.", "Mã khách hàng [ACCOUNT].", ["account"]),
    ("Thẻ 4111 1111 1111 1111 bị trừ tiền.", "Thẻ [CARD] bị trừ tiền.", ["card"]),
    ("Card 5500-0000-0000-0004 was charged.", "Card [CARD] was charged.", ["card"]),
    ("card 4111111111111111 declined", "card [CARD] declined", ["card"]),
]


@pytest.mark.parametrize("text, scrubbed, kinds", CASES)
def test_scrub_each_kind(text, scrubbed, kinds):
    assert scrub_pii(text) == scrubbed
    assert [k for k, _ in find_pii(text)] == kinds


def test_find_pii_returns_matches_in_order():
    text = "Thẻ 4111 1111 1111 1111, email an.le@gmail.com, SĐT 0912345678, STK 1234567890."
    assert find_pii(text) == [("card", "4111 1111 1111 1111"), ("email", "an.le@gmail.com"),
                              ("phone", "0912345678"), ("account", "1234567890")]


@pytest.mark.parametrize("text", [
    "Đơn hàng DH123456 của tôi đâu rồi?",
    "Order DH98765432 cost 1,500,000 VND on 12/3.",
    "Tôi chuyển 250.000đ ngày 05/03/2024 lúc 09:30, thử 3 lần.",
    "Vay 50 triệu trong 12 tháng, thu nhập 10 triệu/tháng.",
    "I was charged VND 14,501,000 twice for order DH2581542.",
])
def test_non_pii_survives(text):
    assert find_pii(text) == []
    assert scrub_pii(text) == text


def test_order_code_next_to_pii_survives():
    text = "Đơn DH123456, thẻ 4111 1111 1111 1111, SĐT 0912 345 678, giá 1.250.000đ."
    assert scrub_pii(text) == "Đơn DH123456, thẻ [CARD], SĐT [PHONE], giá 1.250.000đ."


def test_order_of_application():
    # a card holds 10-digit runs and an email can hold a phone number: the longer
    # shape must win, never a piece of it
    assert find_pii("4111 1111 1111 1111") == [("card", "4111 1111 1111 1111")]
    assert find_pii("an0912345678@gmail.com") == [("email", "an0912345678@gmail.com")]
    assert find_pii("0912345678") == [("phone", "0912345678")]          # phone-shaped, not an account
    assert find_pii("12345678901234") == [("account", "12345678901234")]


@pytest.mark.parametrize("text", [c[0] for c in CASES])
def test_idempotent(text):
    once = scrub_pii(text)
    assert scrub_pii(once) == once
    assert find_pii(once) == []


def test_placeholders():
    assert PLACEHOLDERS == {"email": "[EMAIL]", "phone": "[PHONE]", "account": "[ACCOUNT]", "card": "[CARD]"}
