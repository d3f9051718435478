"""Sensitive-data detection: find PII, financial data and secrets in prompt text.

`detect_sensitive(text)` says *what* a prompt contains (classes and per-kind
counts), never the matched values; `redact(text)` replaces each finding with
`[REDACTED:<kind>]`. Both are pure and deterministic.

What is detected (kind -> classes):

==================  ======================  ===========================================
kind                classes                 how it is recognised
==================  ======================  ===========================================
``email``           pii                     ``local@domain.tld`` (ASCII, local part
                                            starting with a letter or digit)
``phone``           pii                     ``+CC …`` international (8-15 digits);
                                            NANP ``(415) 555-2671`` / ``415-555-2671``
                                            (valid area/exchange digits); trunk-0
                                            national ``020 7946 0958``, ``06 12 34 56 78``
                                            (10-12 digits, at least one separator)
``card``            financial, pii          13-19 digits, plain or grouped by 4 (Amex
                                            4-6-5), first digit 2-6, Luhn check
``iban``            financial, pii          known country code + registered length,
                                            ISO 13616 mod-97 check
``us_ssn``          pii                     ``AAA-GG-SSSS`` (or spaces, or 9 digits right
                                            after "SSN"), SSA invalid ranges rejected
``uk_nino``         pii                     UK National Insurance number, HMRC prefix
                                            rules, suffix A-D
``es_dni``          pii                     Spanish DNI / NIE with its mod-23 letter
``openai_key``      secret                  ``sk-…`` / ``sk-proj-…`` (mixed-case base62)
``anthropic_key``   secret                  ``sk-ant-…``
``aws_access_key``  secret                  ``AKIA…`` / ``ASIA…`` + 16 chars
``github_token``    secret                  ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``,
                                            ``github_pat_…``
``google_api_key``  secret                  ``AIza`` + 35 chars
``slack_token``     secret                  ``xoxb-``/``xoxp-``/``xoxa-``/``xoxr-``/``xoxs-``
``stripe_key``      secret                  ``sk_live_``/``rk_live_``/``sk_test_`` …
``jwt``             secret                  three base64url segments starting ``eyJ``
``generic_secret``  secret                  ``api_key = …``, ``token: …``, ``password=…``,
                                            ``Bearer …``: the value only, when it looks
                                            random (length, character classes, entropy)
                                            and is not a placeholder
``private_key``     secret                  ``-----BEGIN … PRIVATE KEY-----`` through its
                                            ``-----END`` line (or the base64 body, when
                                            the END line is missing)
==================  ======================  ===========================================

Findings never overlap: detectors run in a fixed priority order (secrets, then
email, IBAN, card, national ids, phone) and a match that overlaps an earlier
one is dropped, so a card number inside an API key counts once, as the key.

Speed: every pattern is precompiled, anchored by a look-behind that fails
inside a run of word characters, and free of nested ambiguous quantifiers, so
the scan is linear in the text's length: on one core a 4 KB prompt takes about a
millisecond and a 1 MB one about half a second, however adversarial its content.
Provider-specific key patterns only run when their literal prefix occurs.

Known limits:

* Checksums carry the precision where they exist, and they are not perfect: one
  random 13-19 digit number in ten passes Luhn, so an order id starting 2-6
  that happens to pass is reported as a card. Phone numbers have no checksum
  and are matched by format alone: a formatted number that is not a phone
  (``415-555-2671`` as a part number) is reported, an unformatted one
  (``4155552671``) is not, and a digit run that continues past a plausible
  number (``020 7946 0958 12``) is rejected whole rather than trimmed, as is one
  right after another digit group (the tail of ``1Z 999 AA1 01 2345 6784``).
* ASCII only: e-mail addresses with non-ASCII characters, full-width digits and
  lower-case IBANs are not recognised.
* National ids: only US, UK and Spain; others (Aadhaar, SIN, BSN, CPF …) either
  lack a checksum that separates them from ordinary numbers or are out of scope.
  Nine bare digits count as an SSN only right after "SSN"/"social security".
* Secrets: only the listed formats plus keyword assignments; a random-looking
  value that is not next to a keyword (``key``, ``secret``, ``token``,
  ``password`` …) is not flagged, while an id assigned to such a keyword (a UUID
  ``idempotency_key``) is.
* Documented test values (card ``4242 4242 4242 4242``, the sample IBANs) are
  reported like real ones; only the best-known sample SSNs (``078-05-1120``,
  ``219-09-9999``, ``123-45-6789``) are skipped.
* Names, postal addresses, dates of birth and free-text health data are not
  detected: they need a language model, not a pattern.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tierline.processors.routing.sensitive_checks import (
    IBAN_LENGTHS,
    char_classes,
    dni_valid,
    iban_valid,
    luhn_valid,
    shannon_entropy,
    ssn_valid,
)

PII = "pii"
FINANCIAL = "financial"
SECRET = "secret"

#: Classes from most to least sensitive; see `SensitivityFindings.most_sensitive`.
CLASS_ORDER: tuple[str, ...] = (SECRET, FINANCIAL, PII)

_PII_ONLY = frozenset({PII})
_FINANCIAL = frozenset({FINANCIAL, PII})
_SECRET = frozenset({SECRET})

#: Every kind `detect_sensitive` reports, and the classes it implies.
KIND_CLASSES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "email": _PII_ONLY,
        "phone": _PII_ONLY,
        "card": _FINANCIAL,
        "iban": _FINANCIAL,
        "us_ssn": _PII_ONLY,
        "uk_nino": _PII_ONLY,
        "es_dni": _PII_ONLY,
        "openai_key": _SECRET,
        "anthropic_key": _SECRET,
        "aws_access_key": _SECRET,
        "github_token": _SECRET,
        "google_api_key": _SECRET,
        "slack_token": _SECRET,
        "stripe_key": _SECRET,
        "jwt": _SECRET,
        "generic_secret": _SECRET,
        "private_key": _SECRET,
    }
)


@dataclass(frozen=True, slots=True)
class SensitivityFindings:
    """What sensitive data a text holds: classes and per-kind counts, never the values.

    `classes` is a subset of {"pii", "financial", "secret"}; `counts` maps each
    kind found (see `KIND_CLASSES`) to how many times it occurs. Falsy when
    nothing was found.
    """

    classes: frozenset[str] = frozenset()
    counts: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze the mapping so the frozen dataclass is immutable all the way down.
        object.__setattr__(self, "counts", MappingProxyType(dict(sorted(self.counts.items()))))

    def __bool__(self) -> bool:
        return bool(self.classes)

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds found, e.g. {"email", "card"}."""
        return frozenset(self.counts)

    @property
    def total(self) -> int:
        """How many findings in all."""
        return sum(self.counts.values())

    @property
    def most_sensitive(self) -> str | None:
        """The most sensitive class found ("secret" > "financial" > "pii"), or None."""
        return next((cls for cls in CLASS_ORDER if cls in self.classes), None)

    def has(self, cls: str) -> bool:
        """Whether a class ("pii", "financial", "secret") or a kind ("card") was found."""
        return cls in self.classes or cls in self.counts


NOTHING = SensitivityFindings()


def detect_sensitive(text: str) -> SensitivityFindings:
    """Scan `text` for PII, financial data and secrets; see the module docstring."""
    spans = _scan(text)
    if not spans:
        return NOTHING
    counts = Counter(kind for _, _, kind in spans)
    classes = frozenset().union(*(KIND_CLASSES[kind] for kind in counts))
    return SensitivityFindings(classes=classes, counts=dict(counts))


def redact(text: str) -> str:
    """`text` with every finding replaced by `[REDACTED:<kind>]`."""
    spans = _scan(text)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end, kind in spans:
        parts.append(text[position:start])
        parts.append(f"[REDACTED:{kind}]")
        position = end
    parts.append(text[position:])
    return "".join(parts)


# --------------------------------------------------------------------------- patterns

_A = re.ASCII

# Secrets. Each has a literal prefix; `_matches` skips the scan when no prefix occurs.
_ANTHROPIC = re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,300}", _A)
_OPENAI = re.compile(
    r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?([A-Za-z0-9_-]{20,300})", _A
)
_AWS = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])", _A)
_GITHUB = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})", _A
)
_GOOGLE = re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])", _A)
_SLACK = re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,250}", _A)
_STRIPE = re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,250}", _A)
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,4096}",
    _A,
)

_SECRET_KEYWORD = (
    r"(?:api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret(?:[_-]?key)?|client[_-]?secret"
    r"|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|key"
    r"|passw(?:or)?d|pwd|credentials?)"
)
_GENERIC = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    + _SECRET_KEYWORD
    + r"[\"']?[ \t]{0,3}(?::=|=>|=|:)[ \t]{0,3}[\"'`]?([A-Za-z0-9_\-+/=.~]{8,512})",
    _A,
)
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])bearer[ \t]+([A-Za-z0-9_\-+/=.~]{16,4096})", _A)
_PASSWORDISH = re.compile(r"(?i)passw|pwd")
_PLACEHOLDERS = (
    "example", "placeholder", "your", "xxxx", "changeme", "redacted", "dummy", "sample",
    "environ", "process.env", "getenv", "settings.", "config.", "secrets.",
)  # fmt: skip

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----", _A)
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----", _A)
# A key body without its END line: base64, whitespace and escaped newlines (JSON strings).
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s\\]*", _A)
_PEM_MAX_BODY = 20_000  # an 8192-bit RSA key is ~6.5 KB of PEM

# PII.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"  # local part
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])",
    _A,
)
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])", _A
)
_CARD = re.compile(
    r"(?<![\w+.-])(?:"
    r"[2-6]\d{12,18}"  # plain
    r"|[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?"  # 4-4-4-4(-3)
    r"|3\d{3}([ -])\d{6}\2\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")(?![\w-]|\.\d)",
    _A,
)
_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|\.\d)", _A)
_SSN_CONTEXT = re.compile(
    r"(?i)(?<![A-Za-z])(?:ssn|social security(?: number| no\.?| #)?)[\s:#.-]{0,5}"
    r"(\d{3})()(\d{2})(\d{4})(?![\w-])",
    _A,
)
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])",
    _A,
)
_DNI = re.compile(r"(?<![A-Za-z0-9])(?:\d{8}|[XYZ]-?\d{7})-?[A-Z](?![A-Za-z0-9])", _A)
# Possessive group: the digit groups are split one way only, never re-tried.
_PHONE_INTL = re.compile(
    r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,7}+(?![\w-]|\.\d)", _A
)
_PHONE_NANP = re.compile(
    r"(?<![\w+#/.-])(?:1[ .-]?)?"
    r"(?:\([2-9]\d{2}\) ?[2-9]\d{2}[ .-]|[2-9]\d{2}([ .-])[2-9]\d{2}\1)\d{4}"
    r"(?![\w-]|\.\d)",
    _A,
)
_PHONE_TRUNK = re.compile(
    r"(?<![\w+#/.-])(?:0\d{1,4}|\(0\d{1,4}\))(?:[ -]\d{2,8}){1,4}+(?![\w-]|\.\d)", _A
)


# --------------------------------------------------------------------------- scanning

_Span = tuple[int, int, str]
_Detector = Callable[[str], Iterator[tuple[int, int]]]


def _matches(pattern: re.Pattern[str], *needles: str) -> _Detector:
    """Every match of `pattern`; skipped outright unless `text` holds one of the `needles`."""

    def detect(text: str) -> Iterator[tuple[int, int]]:
        if needles and not any(needle in text for needle in needles):
            return
        for match in pattern.finditer(text):
            yield match.span()

    return detect


def _aws(text: str) -> Iterator[tuple[int, int]]:
    for start, end in _matches(_AWS, "AKIA", "ASIA", "ABIA", "ACCA")(text):
        # AWS's documentation key, AKIAIOSFODNN7EXAMPLE, quoted in code and reviews: no secret
        if not text[start:end].endswith("EXAMPLE"):
            yield start, end


def _openai(text: str) -> Iterator[tuple[int, int]]:
    if "sk-" not in text:
        return
    for match in _OPENAI.finditer(text):
        # Real keys are random base62: all three character classes. Rules out "sk-learn-…".
        if char_classes(match.group(1)) == 3:
            yield match.span()


def _looks_random(value: str, *, password: bool) -> bool:
    lowered = value.lower()
    if any(marker in lowered for marker in _PLACEHOLDERS):
        return False
    if password:
        return len(value) >= 8 and char_classes(value) >= 2
    return len(value) >= 16 and char_classes(value) >= 2 and shannon_entropy(value) >= 3.0


# Every keyword `_GENERIC` knows holds one of these (lowercased): a cheap test that lets the
# case-insensitive scan, the slowest of all, skip the many prompts that hold none.
_GENERIC_NEEDLES = ("key", "secret", "token", "passw", "pwd", "credential")


def _generic(text: str) -> Iterator[tuple[int, int]]:
    lowered = text.lower()
    if any(needle in lowered for needle in _GENERIC_NEEDLES):
        yield from _generic_assignments(text)
    if "bearer" in lowered:
        for match in _BEARER.finditer(text):
            if _looks_random(match.group(1), password=False):
                yield match.span(1)


def _generic_assignments(text: str) -> Iterator[tuple[int, int]]:
    for match in _GENERIC.finditer(text):
        value = match.group(1).rstrip(".")
        password = _PASSWORDISH.search(text, match.start(), match.start(1)) is not None
        if _looks_random(value, password=password):
            yield match.start(1), match.start(1) + len(value)


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    if "PRIVATE KEY" not in text:
        return
    ends = [match.span() for match in _PEM_END.finditer(text)]
    end_starts = [start for start, _ in ends]
    claimed = 0
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < claimed:
            continue
        index = bisect_left(end_starts, begin.end())
        if index < len(ends) and ends[index][0] - begin.end() <= _PEM_MAX_BODY:
            claimed = ends[index][1]
        else:
            body = _PEM_BODY.match(text, begin.end(), begin.end() + _PEM_MAX_BODY)
            claimed = begin.end() + len(body.group().rstrip(" \t\r\n\\")) if body else begin.end()
        yield begin.start(), claimed


def _iban(text: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        # The pattern may run on into a following word ("… 7034 CODE"): cut the match at
        # the country's registered length, if that falls on a group boundary.
        value = match.group()
        expected = IBAN_LENGTHS.get(value[:2])
        if expected is None:
            continue
        characters = [index for index, char in enumerate(value) if char != " "]
        if len(characters) < expected:
            continue
        cut = characters[expected - 1] + 1
        if (cut == len(value) or value[cut] == " ") and iban_valid(value[:cut]):
            yield match.start(), match.start() + cut


def _card(text: str) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield match.span()


def _ssn(text: str) -> Iterator[tuple[int, int]]:
    for pattern, group in ((_SSN, 0), (_SSN_CONTEXT, 1)):
        for match in pattern.finditer(text):
            if ssn_valid(match.group(1), match.group(3), match.group(4)):
                yield match.start(group), match.end()


def _dni(text: str) -> Iterator[tuple[int, int]]:
    for match in _DNI.finditer(text):
        if dni_valid(match.group()):
            yield match.span()


_AFTER_DIGIT_GROUP = re.compile(r"\d[ .-]", _A)


def _phone(text: str) -> Iterator[tuple[int, int]]:
    for pattern, low, high in ((_PHONE_INTL, 8, 15), (_PHONE_NANP, 10, 11), (_PHONE_TRUNK, 10, 12)):
        for match in pattern.finditer(text):
            start = match.start()
            # The tail of a longer grouped number (a parcel id "1Z 999 AA1 01 2345 6784").
            if start >= 2 and _AFTER_DIGIT_GROUP.match(text, start - 2):
                continue
            digits = sum(c.isdigit() for c in match.group())
            if low <= digits <= high:
                yield match.span()


# Priority order: an earlier detector's finding wins over an overlapping later one.
_DETECTORS: tuple[tuple[str, _Detector], ...] = (
    ("private_key", _private_keys),
    ("anthropic_key", _matches(_ANTHROPIC, "sk-ant-")),
    ("openai_key", _openai),
    ("aws_access_key", _aws),
    ("github_token", _matches(_GITHUB, "gh", "github_pat_")),
    ("google_api_key", _matches(_GOOGLE, "AIza")),
    ("slack_token", _matches(_SLACK, "xox")),
    ("stripe_key", _matches(_STRIPE, "_live_", "_test_")),
    ("jwt", _matches(_JWT, "eyJ")),
    ("generic_secret", _generic),
    ("email", _matches(_EMAIL, "@")),
    ("iban", _iban),
    ("card", _card),
    ("us_ssn", _ssn),
    ("uk_nino", _matches(_NINO)),
    ("es_dni", _dni),
    ("phone", _phone),
)


# Every card, SSN, NINO, DNI and phone number holds six ASCII digits with at most two other
# characters between neighbours ("(555) 123-4567", "AB 12 34 56 C"): text without such a
# run skips those detectors. An IBAN needs two letters and two check digits together.
_SIX_DIGITS = re.compile(r"[0-9](?:[^0-9]{0,2}[0-9]){5}")
_IBAN_START = re.compile(r"[A-Z]{2}[0-9]{2}")
_NUMERIC = frozenset({"card", "us_ssn", "uk_nino", "es_dni", "phone"})


def _needless(text: str) -> frozenset[str]:
    """The detectors that cannot match `text`, known from cheap whole-text tests."""
    skip: set[str] = set()
    if _SIX_DIGITS.search(text) is None:
        skip |= _NUMERIC
    if _IBAN_START.search(text) is None:
        skip.add("iban")
    return frozenset(skip)


def _longest_first(span: tuple[int, int]) -> tuple[int, int]:
    return span[0], -span[1]


def _scan(text: str) -> list[_Span]:
    """Non-overlapping findings, sorted by position."""
    claimed: list[_Span] = []
    skip = _needless(text)
    for kind, detect in _DETECTORS:
        if kind in skip:
            continue
        starts = [start for start, _, _ in claimed]
        fresh: list[_Span] = []
        for start, end in sorted(detect(text), key=_longest_first):
            if end <= start or (fresh and fresh[-1][1] > start):
                continue
            # Claimed spans are disjoint and sorted, so only the neighbours can overlap.
            index = bisect_right(starts, start)
            if index and claimed[index - 1][1] > start:
                continue
            if index < len(claimed) and claimed[index][0] < end:
                continue
            fresh.append((start, end, kind))
        if fresh:
            claimed = sorted(claimed + fresh)
    return claimed
