"""Prompt features: what a prompt's text says about how hard it is, read in one cheap pass.

Classifiers route on the *ask*, not on the scaffolding around it. A few-shot
prompt (worked examples, each ending in an answer, then the real question) is
long because of its examples; its difficulty lives in the last paragraph. So
`extract` first finds the ask, then measures it: its words, digits and
clauses, code and math marks, how many steps it asks for, which output format
it wants, whether it is multiple choice, how often it negates.

Speed is a feature here (classification sits on every request's path), so the
scan is capped — `HEAD_CHARS` from the start and `TAIL_CHARS` from the end of
the prompt, `ASK_CHARS` of the ask — and done with C-level string work: one
lower-case + translate + split into words, one `Counter` of them that every
word-based measure reads, and one byte filter that keeps only digits and
symbols, so code and math marks are counted in a string a tenth the size.
`chars` is still the full length.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

HEAD_CHARS = 3000
TAIL_CHARS = 1000
ASK_CHARS = 1200
SHOT_TAIL_CHARS = 160

_SHOT_MARKERS = ("answer:", "output:", "a:", "label:", "response:", "assistant:")
_SPACED = string.punctuation + "\n\t\r"
_TO_SPACE = str.maketrans({c: " " for c in _SPACED})
#: the same map for ASCII bytes: `bytes.translate` is a table lookup, several times
#: faster than `str.translate`'s per-character dict
_TO_SPACE_BYTES = bytes(32 if chr(c) in _SPACED else c for c in range(256))
_MARK_CHARS = "0123456789{}();=<>!+-*/^$\\`"
_NOT_MARKS = bytes(c for c in range(256) if chr(c) not in _MARK_CHARS)
_NOT_DIGITS = bytes(c for c in range(256) if chr(c) not in "0123456789")
_ARITHMETIC = re.compile(rb"\d[-+*/=<>^]\d")
_CODE_SYMBOLS = (b"```", b"{", b"};", b"==", b"=>", b"->", b"!=", b"+=")
_CODE_WORDS = (
    "def", "elif", "lambda", "println", "printf", "struct", "impl", "void", "const",
    "async", "await", "namespace", "typedef", "nullptr", "stdout", "boolean", "int", "str",
)  # fmt: skip
_LATEX = ("\\frac", "\\sum", "\\int", "\\sqrt", "\\cdot", "\\times", "\\pi", "\\alpha", "\\theta")
_UNICODE_MATH = "√∑∫π≈≠≤≥∞×÷"
_CLAUSE_WORDS = (
    "and", "or", "but", "because", "which", "that", "while", "if", "unless", "so",
    "although", "whereas",
)  # fmt: skip
_NEGATION_WORDS = ("not", "t", "except", "never", "least", "without", "no", "none")  # t: don't
_SEQUENCE_WORDS = ("first", "firstly", "then", "next", "afterwards", "finally", "lastly")
_SEQUENCE_PHRASES = (("step", "step by step"), ("after", "after that"), ("followed", "followed by"))
#: every word a measure counts, with the measure it counts towards: one set
#: intersection with the ask's words finds them all (the lists share no word)
_COUNTED: dict[str, str] = {
    **dict.fromkeys(_CODE_WORDS, "code"),
    **dict.fromkeys(_CLAUSE_WORDS, "clauses"),
    **dict.fromkeys(_NEGATION_WORDS, "negations"),
    **dict.fromkeys(_SEQUENCE_WORDS, "steps"),
}
assert len(_COUNTED) == len(_CODE_WORDS + _CLAUSE_WORDS + _NEGATION_WORDS + _SEQUENCE_WORDS)
_COUNTED_WORDS = frozenset(_COUNTED)
_FORMAT_WORDS = frozenset({"json", "yaml", "xml", "csv", "markdown", "table", "bullet", "schema"})
#: a line opening with a list item's marker (`1.`, `2)`, `-`, `*`, `•`: group 1, so
#: `findall` gives it) or with a choice's (`A)`, `(b)`, `c.`, `D:`: `findall` gives "").
#: One scan counts both: every match starts at a newline and holds no other, and no
#: line opening is both, so each count is what its own pattern alone would find
_LINE_OPENING = re.compile(r"\n[ \t]*(?:(\d{1,2}[.)]|[-*•])|\(?[a-hA-H][).:])[ \t]+\S")


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """What one pass over a prompt found. Counts are over the ask unless said otherwise."""

    chars: int
    ask: str
    lowered: str
    tokens: tuple[str, ...]
    word_counts: Mapping[str, int]
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

    A paragraph ending in an answer marker followed by an answer ("Answer: B",
    "Output: ...") is a shot; when at least one precedes the last paragraph,
    the last paragraph is the ask. Otherwise the whole text is.
    """
    paragraphs = [p for p in text.split("\n\n") if p and not p.isspace()]
    if len(paragraphs) < 2:
        return text, 0
    shots = 0
    for paragraph in paragraphs[:-1]:
        ending = paragraph[-SHOT_TAIL_CHARS:].lower()
        for marker in _SHOT_MARKERS:
            at = ending.rfind(marker)
            answer = ending[at + len(marker) :] if at >= 0 else ""
            if answer and not answer.isspace():
                shots += 1
                break
    if shots == 0:
        return text, 0
    return paragraphs[-1], shots


def tokenize(lowered: str) -> tuple[str, ...]:
    """Words and numbers of lower-cased text, punctuation dropped."""
    if lowered.isascii():  # the same split, by byte table (ASCII whitespace is all there is)
        return tuple(lowered.encode().translate(_TO_SPACE_BYTES).decode().split())
    return tuple(lowered.translate(_TO_SPACE).split())


def grams(tokens: Sequence[str]) -> list[str]:
    """The unigrams then the bigrams (two adjacent tokens, one space between) of `tokens`,
    repeats kept: the terms the tf-idf learner and the hashed features read."""
    return [*tokens, *map(" ".join, zip(tokens, tokens[1:], strict=False))]


def extract(text: str) -> PromptFeatures:
    """Measure a prompt. Cost is bounded by the scan caps, not by the prompt's length.

    Remembered for the last few prompts: one routing step reads the same prompt twice
    (the classifier, then the feature record), and `PromptFeatures` is immutable. What
    is remembered is keyed by what the measures read, the scanned head and tail and the
    length, so the lookup too costs the caps, not the prompt (hashing an 80 kB prompt
    to look it up took longer than measuring it).
    """
    return _measure(scanned(text), len(text))


def forget() -> None:
    """Forget the remembered prompts (benchmarks use it: each prompt new to the router)."""
    _measure.cache_clear()


@lru_cache(maxsize=256)
def _measure(body: str, chars: int) -> PromptFeatures:
    """`extract` of a prompt of `chars` characters whose `scanned` part is `body`."""
    ask, shots = split_ask(body)
    ask = scanned(ask, ASK_CHARS * 3 // 4, ASK_CHARS // 4)
    lowered = ask.lower()
    tokens = tokenize(lowered)
    counts = Counter(tokens)
    marks = ask.encode("utf-8", "ignore").translate(None, _NOT_MARKS)
    digits = len(marks.translate(None, _NOT_DIGITS))

    counted = dict.fromkeys(("code", "clauses", "negations", "steps"), 0)
    for word in _COUNTED_WORDS.intersection(counts):
        counted[_COUNTED[word]] += counts[word]

    code = sum(map(marks.count, _CODE_SYMBOLS)) + ask.count("()")
    code += counted["code"] + 3 * ("```" in body)
    math = marks.count(b"^") + (len(_ARITHMETIC.findall(marks)) if digits >= 2 else 0)
    if b"\\" in marks:
        math += sum(ask.count(command) for command in _LATEX)
    if not ask.isascii():
        math += sum(ask.count(symbol) for symbol in _UNICODE_MATH)

    openings = _LINE_OPENING.findall("\n" + ask)
    choices = openings.count("")
    steps = len(openings) - choices + counted["steps"]
    steps += sum(1 for gate, phrase in _SEQUENCE_PHRASES if gate in counts and phrase in lowered)
    formats = _FORMAT_WORDS.intersection(counts)
    return PromptFeatures(
        chars=chars,
        ask=ask,
        lowered=lowered,
        tokens=tokens,
        word_counts=counts,
        ask_digits=digits,
        ask_clauses=ask.count(",") + marks.count(b";") + counted["clauses"],
        shots=shots,
        choices=choices,
        code_marks=code,
        math_marks=math,
        steps=steps,
        output_format=min(formats) if formats else None,
        negations=counted["negations"],
    )
