"""Prompt features: what a prompt's text says about how hard it is, read in one cheap pass.

Classifiers route on the *ask*, not on the scaffolding around it. A few-shot
prompt (worked examples, each ending in an answer, then the real question) is
long because of its examples; its difficulty lives in the last paragraph. So
`extract` first finds the ask, then measures it: its words, digits and
clauses, code and math marks, how many steps it asks for, which output format
it wants, whether it is multiple choice, how often it negates.

Speed is a feature here (classification sits on every request's path), so the
scan is capped — `HEAD_CHARS` from the start and `TAIL_CHARS` from the end of
the prompt, `ASK_CHARS` of the ask — and measured with C-level string methods
(`count`, `translate`, `split`) plus two regexes anchored on a literal. `chars`
is still the full length.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

HEAD_CHARS = 4000
TAIL_CHARS = 2000
ASK_CHARS = 2000

_SHOT_MARKERS = ("answer:", "output:", "a:", "label:", "response:", "assistant:")
_TO_SPACE = str.maketrans({c: " " for c in string.punctuation + "\n\t\r"})
_DIGITS = "0123456789"
_CLAUSE_WORDS = (
    " and ", " or ", " but ", " because ", " which ", " that ", " while ", " if ",
    " unless ", " so ", " although ", " whereas ",
)  # fmt: skip
_NEGATIONS = (" not ", "n't", " except", " never ", " least ", " without ", " no ", " none ")
_SEQUENCE_WORDS = frozenset(
    {"first", "firstly", "then", "next", "afterwards", "finally", "lastly", "secondly", "thirdly"}
)
_SEQUENCE_PHRASES = ("step by step", "after that", "followed by", "step 1", "step one")
_FORMAT_WORDS = frozenset(
    {"json", "yaml", "xml", "csv", "markdown", "table", "bullet", "bulleted", "schema", "tsv"}
)
_CODE_MARKS = ("```", "{", "};", "()", "==", "=>", "->", "!=", "+=", "def ", "return ", "import ")
_MATH_MARKS = ("\\frac", "\\sum", "\\int", "\\sqrt", "$", "^", "√", "∑", "∫", "π", "≤", "≥", "≠")
_ARITHMETIC = re.compile(r"\d ?[-+*/×÷=<>] ?[\d(]")
_LIST_ITEM = re.compile(r"\n[ \t]*(?:\d{1,2}[.)]|[-*•])[ \t]+\S")
_CHOICE = re.compile(r"\n[ \t]*\(?[a-hA-H][).:][ \t]+\S")


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """What one pass over a prompt found. Counts are over the ask unless said otherwise."""

    chars: int
    ask: str
    tokens: tuple[str, ...]
    ask_digits: int
    ask_clauses: int
    shots: int
    choices: int
    code_marks: int
    math_marks: int
    steps: int
    output_format: str | None
    negations: int

    @property
    def ask_words(self) -> int:
        return len(self.tokens)

    @property
    def multi_step(self) -> bool:
        return self.steps >= 2


def scanned(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    """The part of `text` classifiers read: all of it, or its head and tail when long."""
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n\n" + text[-tail:]


def split_ask(text: str) -> tuple[str, int]:
    """The ask and the number of worked examples (shots) in front of it.

    A paragraph with an answer marker followed by an answer ("Answer: B",
    "Output: ...") is a shot; when at least one precedes the last paragraph,
    the last paragraph is the ask. Otherwise the whole text is.
    """
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return text, 0
    shots = 0
    for paragraph in paragraphs[:-1]:
        lowered = paragraph.lower()
        for marker in _SHOT_MARKERS:
            at = lowered.rfind(marker)
            if at >= 0 and lowered[at + len(marker) :].strip():
                shots += 1
                break
    if shots == 0:
        return text, 0
    return paragraphs[-1], shots


def tokenize(text: str) -> tuple[str, ...]:
    """Lower-cased words and numbers, punctuation dropped."""
    return tuple(text.lower().translate(_TO_SPACE).split())


def extract(text: str) -> PromptFeatures:
    """Measure a prompt. Cost is bounded by the scan caps, not by the prompt's length."""
    body = scanned(text)
    ask, shots = split_ask(body)
    ask = scanned(ask, ASK_CHARS * 3 // 4, ASK_CHARS // 4)
    lowered = ask.lower()
    tokens = tuple(lowered.translate(_TO_SPACE).split())
    words = frozenset(tokens)
    padded = f" {lowered} "
    steps = len(_LIST_ITEM.findall("\n" + ask)) + len(words & _SEQUENCE_WORDS)
    steps += sum(phrase in lowered for phrase in _SEQUENCE_PHRASES)
    formats = words & _FORMAT_WORDS
    math_marks = sum(ask.count(mark) for mark in _MATH_MARKS)
    digits = sum(ask.count(d) for d in _DIGITS)
    if digits >= 2:
        math_marks += len(_ARITHMETIC.findall(ask))
    return PromptFeatures(
        chars=len(text),
        ask=ask,
        tokens=tokens,
        ask_digits=digits,
        ask_clauses=ask.count(",") + ask.count(";") + sum(padded.count(w) for w in _CLAUSE_WORDS),
        shots=shots,
        choices=len(_CHOICE.findall("\n" + ask)),
        code_marks=sum(ask.count(mark) for mark in _CODE_MARKS) + 3 * ("```" in body),
        math_marks=math_marks,
        steps=steps,
        output_format=min(formats) if formats else None,
        negations=sum(padded.count(n) for n in _NEGATIONS),
    )
