"""processors.sensitivity: what is found, what is not, redaction, speed on 1 MB."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierline.processors.routing.sensitive_checks import iban_valid, luhn_valid
from tierline.processors.routing.sensitivity import (
    KIND_CLASSES,
    NOTHING,
    SensitivityFindings,
    detect_sensitive,
    redact,
)

# Secret-looking fixtures are assembled at run time, so no complete token sits in the
# source for secret scanners to trip on; none of them is a real credential.
_B62 = "q8Zr2LmN4pX7vT1wY9sKd3Fh6Jc0Gb5R"
OPENAI_KEY = "sk-" + "proj-" + _B62 + "Aa1" + _B62[::-1]
OPENAI_LEGACY_KEY = "sk-" + _B62 + "T3BlbkFJ" + _B62[:8]
ANTHROPIC_KEY = "sk-" + "ant-api03-" + _B62 * 3 + "-xyzAA"
AWS_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"  # split, so secret scanners leave this file alone
GITHUB_TOKEN = "ghp" + "_" + _B62 + "abcd"
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0" + _B62 + "_" + _B62
GOOGLE_KEY = "AIza" + "SyD" + _B62
SLACK_TOKEN = "xox" + "b-1234567890-0987654321-" + _B62[:24]
STRIPE_KEY = "sk" + "_live_" + _B62[:24]
JWT = ".".join(
    ["eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0", _B62[:43]]
)
PEM_BODY = "MIIEowIBAAKCAQEA" + _B62 + "\n" + _B62[::-1] + "+/==\n"
PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\n" + PEM_BODY + "-----END " + "RSA PRIVATE KEY-----"
)


def kinds(text: str) -> dict[str, int]:
    return dict(detect_sensitive(text).counts)


# ------------------------------------------------------------------ each kind is found


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+billing@example.co.uk today", "email"),
        ("Contact: ops-team@mail.initech.io.", "email"),
        ("call +44 20 7946 0958 after 5pm", "phone"),
        ("call +1 (415) 555-2671", "phone"),
        ("WhatsApp me: +33 6 12 34 56 78", "phone"),
        ("my number is +14155552671", "phone"),
        ("office (415) 555-2671", "phone"),
        ("cell 415-555-2671.", "phone"),
        ("cell 415.555.2671", "phone"),
        ("Tel: 020 7946 0958", "phone"),
        ("Mobile 07700 900123", "phone"),
        ("appelez le 06 12 34 56 78", "phone"),
        ("card 4111 1111 1111 1111 exp 12/27", "card"),
        ("card 4242-4242-4242-4242", "card"),
        ("card 5555555555554444", "card"),
        ("amex 3782 822463 10005", "card"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "iban"),
        ("pay to DE89370400440532013000 please", "iban"),
        ("IBAN: FR14 2004 1010 0505 0001 3M02 606", "iban"),
        ("IBAN BE68 5390 0754 7034 BIC GKCCBEBB", "iban"),
        ("SSN 536-22-1234 on file", "us_ssn"),
        ("social security number: 536221234", "us_ssn"),
        ("NI number AB 12 34 56 C", "uk_nino"),
        ("NINO: JG103759A", "uk_nino"),
        ("DNI 12345678Z", "es_dni"),
        ("NIE X1234567L", "es_dni"),
        (f"OPENAI_API_KEY={OPENAI_KEY}", "openai_key"),
        (f"key {OPENAI_LEGACY_KEY} here", "openai_key"),
        (f"ANTHROPIC_API_KEY='{ANTHROPIC_KEY}'", "anthropic_key"),
        (f"aws_access_key_id = {AWS_KEY}", "aws_access_key"),
        (f"token {GITHUB_TOKEN}", "github_token"),
        (f"GH_TOKEN={GITHUB_PAT}", "github_token"),
        (f"maps key {GOOGLE_KEY}", "google_api_key"),
        (f"SLACK_BOT_TOKEN: {SLACK_TOKEN}", "slack_token"),
        (f"stripe.api_key = '{STRIPE_KEY}'", "stripe_key"),
        (f"Authorization: Bearer {JWT}", "jwt"),
        ('client_secret: "Zq8r2LmN4pX7vT1wY9sK"', "generic_secret"),
        ("aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYzK3q9LmVb2Xe", "generic_secret"),
        ("DB_PASSWORD=hunter2x9", "generic_secret"),
        ("curl -H 'Authorization: Bearer 9fK2mQ7xL0pZ4vR8tY1wB6nC' https://api", "generic_secret"),
        (f"here is my key:\n{PRIVATE_KEY}\nthanks", "private_key"),
    ],
)
def test_each_kind_is_found(text: str, kind: str) -> None:
    found = detect_sensitive(text)
    assert found.counts == {kind: 1}, found
    assert found.classes == KIND_CLASSES[kind]


def test_classes_by_kind() -> None:
    assert detect_sensitive("4111 1111 1111 1111").classes == {"financial", "pii"}
    assert detect_sensitive("GB82 WEST 1234 5698 7654 32").classes == {"financial", "pii"}
    assert detect_sensitive("a@example.com").classes == {"pii"}
    assert detect_sensitive(AWS_KEY).classes == {"secret"}
    assert set().union(*KIND_CLASSES.values()) == {"pii", "financial", "secret"}


def test_counts_and_summary() -> None:
    text = f"a@example.com, b@example.org, 4111111111111111, {AWS_KEY}"
    found = detect_sensitive(text)
    assert found.counts == {"email": 2, "card": 1, "aws_access_key": 1}
    assert found.total == 4
    assert found.kinds == {"email", "card", "aws_access_key"}
    assert found.most_sensitive == "secret"
    assert found.has("financial") and found.has("card") and not found.has("iban")
    assert bool(found)


def test_nothing_found() -> None:
    found = detect_sensitive("Summarize this paragraph about quarterly revenue in 3 bullets.")
    assert found == NOTHING
    assert not found
    assert found.most_sensitive is None
    assert found.total == 0


def test_findings_are_immutable_and_hashable() -> None:
    found = detect_sensitive("a@example.com")
    with pytest.raises(AttributeError):
        found.classes = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        found.counts["email"] = 5  # type: ignore[index]
    assert hash(found) == hash(detect_sensitive("b@example.com"))
    assert "example.com" not in repr(found)  # no raw values kept


def test_private_key_in_json_string_and_without_end_line() -> None:
    escaped = PRIVATE_KEY.replace("\n", "\\n")
    assert kinds('{"private_key": "' + escaped + '\\n", "type": "service_account"}') == {
        "private_key": 1
    }
    truncated = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n...and then it cut off"
    assert kinds(truncated) == {"private_key": 1}
    assert _B62 not in redact(truncated)


def test_overlaps_count_once() -> None:
    # A Luhn-valid local part is matched by the card pattern too; the earlier e-mail wins.
    assert kinds("4111111111111111@example.com") == {"email": 1}
    assert redact("4111111111111111@example.com") == "[REDACTED:email]"
    assert kinds(f"{OPENAI_KEY} and again {OPENAI_KEY}") == {"openai_key": 2}


# ------------------------------------------------------------------ near misses


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # 16 digits failing Luhn
        "card 4111 1111 1111 1112",  # grouped, failing Luhn
        "tracking 1234567890123456",  # starts with 1: not a card network
        "IBAN GB82 WEST 1234 5698 7654 33",  # mod-97 fails
        "IBAN GB82 WEST 1234 5698 7654",  # wrong length for GB
        "account XX82 WEST 1234 5698 7654 32",  # unknown country
        "SSN 000-12-3456",
        "SSN 666-12-3456",
        "SSN 912-12-3456",
        "SSN 536-00-1234",
        "SSN 536-22-0000",
        "NI QQ 12 34 56 C",  # Q is not a valid first letter
        "NI GB 12 34 56 C",  # GB is a reserved prefix
        "DNI 12345678A",  # wrong check letter
        "the sk-learn-compatible-estimators-for-everyone package",
        "api_key=YOUR_API_KEY_HERE",
        "api_key = os.environ.get",
        "password: ********",
        "token: abcdefghijklmnopqrstuvwxyz",  # one character class, low entropy
        "primary key = customer_id_and_order_id",
        "user@localhost",  # no TLD
        "WHERE lower(email) LIKE '%@northwind.example'",  # a pattern, not an address
    ],
)
def test_near_misses_are_not_findings(text: str) -> None:
    assert detect_sensitive(text) == NOTHING, text


@pytest.mark.parametrize(
    "text",
    [
        "Order #555-123-4567 is delayed",
        "order id 1234567890 was refunded",
        "order 2024-1145-889 failed",
        "ticket 123-456-7890 reopened",  # area code cannot start with 1
        "invoice INV-0042-2024-7781",
        "the years 2019 2020 2021 2022 were good",
        "released on 2024-03-15 at 14:30",
        "on 01-02-2024 we shipped",
        "version 10.4.2.1877 is out",
        "pi is 3.14159265358979",
        "SKU 00012345",
        "timestamp 1700000000000",
        "ratio +12.5 points",
        "TZ +05:30",
        "build 20240115-0042",
        "UPS tracking 1Z 999 AA1 01 2345 6784",
    ],
)
def test_ids_dates_and_numbers_are_not_phones(text: str) -> None:
    assert detect_sensitive(text) == NOTHING, text


def test_checks() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert luhn_valid("79927398713")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert iban_valid("gb82west12345698765432")
    assert not iban_valid("GB82 WEST 1234 5698 7654 23")  # transposed digits
    assert not iban_valid("GB82 WEST 1234 5698 7654 3")


# ------------------------------------------------------------------ redaction


def test_redact_replaces_each_finding() -> None:
    text = (
        f"Hi, I'm jane.doe@example.com, card 4111 1111 1111 1111, "
        f"key {ANTHROPIC_KEY}, call +44 20 7946 0958.\n{PRIVATE_KEY}\nBye"
    )
    out = redact(text)
    assert out == (
        "Hi, I'm [REDACTED:email], card [REDACTED:card], key [REDACTED:anthropic_key], "
        "call [REDACTED:phone].\n[REDACTED:private_key]\nBye"
    )
    for secret in ("jane.doe", "4111", ANTHROPIC_KEY, "7946", "MIIE", _B62):
        assert secret not in out
    assert detect_sensitive(out) == NOTHING


def test_redact_keeps_the_keyword_of_an_assignment() -> None:
    assert redact('client_secret: "Zq8r2LmN4pX7vT1wY9sK"') == (
        'client_secret: "[REDACTED:generic_secret]"'
    )


def test_redact_without_findings_is_identity() -> None:
    text = "Translate 'good morning' into Spanish, please."
    assert redact(text) == text


# ------------------------------------------------------------------ speed


_MB = 1_000_000
_PARAGRAPH = (
    "Hi team, customer jane.doe@example.com (+44 20 7946 0958) says order 2024-1145-889 "
    "failed; card 4111 1111 1111 1111 was charged twice. api_key=Zx81kQ0pLm3nB7vC2dF9 ok. "
)


# Inputs that make careless patterns backtrack: long runs that almost match.
_ADVERSARIAL = [
    "a" * 64 + " ",
    "7" * 200 + " ",
    "1 " * 50,
    "a@b." * 30,
    "+1 " * 40,
    "-----BEGIN " + "PRIVATE KEY-----",
    "key=" * 20,
    "eyJ" * 40,
    "4111-1111-1111-" * 10,
    "GB82 WEST " * 10,
]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("realistic", _PARAGRAPH * (_MB // len(_PARAGRAPH))),
        ("adversarial", "".join(chunk * (_MB // 10 // len(chunk)) for chunk in _ADVERSARIAL)),
    ],
)
def test_one_megabyte_is_fast(name: str, text: str) -> None:
    assert len(text) > 0.9 * _MB
    started = time.perf_counter()
    detect_sensitive(text)
    # ~0.5 s on a laptop; a quadratic pattern would take minutes.
    assert time.perf_counter() - started < 5, name


# ------------------------------------------------------------------ properties


# (IIN prefix, length) of the major card networks.
_NETWORKS = [
    ("4", 13), ("4", 16), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
    ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("35", 16), ("36", 14), ("62", 17),
    ("62", 18),
]  # fmt: skip


def _luhn_check_digit(partial: str) -> str:
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:  # doubled once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str(-total % 10)


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, as written): a Luhn-valid number, plain or grouped by spaces or dashes."""
    prefix, length = draw(st.sampled_from(_NETWORKS))
    middle = draw(st.text(alphabet="0123456789", min_size=length - len(prefix) - 1,
                          max_size=length - len(prefix) - 1))  # fmt: skip
    digits = prefix + middle + _luhn_check_digit(prefix + middle)
    separator = draw(st.sampled_from(["", " ", "-"]))
    if separator and length == 15:
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        groups = [digits[i : i + 4] for i in range(0, length, 4)]
    return digits, separator.join(groups)


_NO_DIGITS = st.text(alphabet=st.characters(exclude_characters="0123456789"), max_size=200)


@given(card=card_numbers(), before=_NO_DIGITS, after=_NO_DIGITS)
def test_any_valid_card_in_random_text_is_detected(
    card: tuple[str, str], before: str, after: str
) -> None:
    digits, written = card
    assert luhn_valid(digits)
    text = f"{before} {written} {after}"
    assert detect_sensitive(text).counts.get("card") == 1
    assert written not in redact(text)


@given(card=card_numbers(), bump=st.integers(min_value=1, max_value=9))
def test_a_wrong_check_digit_is_never_a_card(card: tuple[str, str], bump: int) -> None:
    _, written = card
    wrong = written[:-1] + str((int(written[-1]) + bump) % 10)
    assert "card" not in detect_sensitive(f"ref {wrong} ok").counts


@given(st.text(alphabet=st.characters(exclude_characters="0123456789@")))
def test_text_without_digits_or_at_signs_has_no_pii(text: str) -> None:
    found = detect_sensitive(text)
    assert "pii" not in found.classes
    assert "financial" not in found.classes


@given(st.text(max_size=300))
def test_findings_and_redaction_agree(text: str) -> None:
    found = detect_sensitive(text)
    out = redact(text)
    assert out.count("[REDACTED:") - text.count("[REDACTED:") == found.total
    assert isinstance(found, SensitivityFindings)


def test_aws_documentation_example_key_is_not_a_secret_but_a_real_looking_one_is() -> None:
    docs = "aws_key = 'AKIA" + "IOSFODNN7EXAMPLE'  # the key in AWS's documentation"
    assert "secret" not in detect_sensitive(docs).classes
    assert detect_sensitive(f"key {AWS_KEY} here").has("aws_access_key")
