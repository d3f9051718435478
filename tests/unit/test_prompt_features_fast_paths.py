"""The fast paths of prompt features give what the plain ones give.

`features.extract` and `hashed_terms.ngram_ids` take shortcuts for speed (a
byte table for ASCII text, one regex scan for list items and choices, one set
intersection for the counted words, a cache keyed by the scanned part): each
test here computes the same measure the plain way and compares.
"""

from __future__ import annotations

import random
import re
import string

from tierline.processors.routing.classifiers import features
from tierline.processors.routing.classifiers.features import extract, scanned, tokenize
from tierline.processors.routing.classifiers.hashed_terms import hashed_counts, ngram_ids, term_id
from tierline.processors.routing.classifiers.tfidf import terms

PLAIN_SPACES = str.maketrans({c: " " for c in string.punctuation + "\n\t\r"})
LIST_ITEM = re.compile(r"\n[ \t]*(?:\d{1,2}[.)]|[-*•])[ \t]+\S")
CHOICE = re.compile(r"\n[ \t]*\(?[a-hA-H][).:][ \t]+\S")
PIECES = [
    "\n", "\n\n", " ", "\t", "\x0b", "\x1c", "1.", "12)", "123.", "-", "*", "•", "(a)", "B)",
    "c.", "D:", "h:", "i)", "x", "Answer: B", "first", "then", "and", "not", "def", ",", ";",
    "()", "```", "3+4", "?", "é", "日本", "\u2003",
]  # fmt: skip


def texts(count: int = 3000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60))) for _ in range(count)]


def test_ascii_tokens_are_the_plain_translate_and_split() -> None:
    for text in [*texts(), "Hello, World!\x1cnext\x1fword\x0bend", "a-b_c(d)e{f}"]:
        lowered = text.lower()
        assert tokenize(lowered) == tuple(lowered.translate(PLAIN_SPACES).split())


def test_one_scan_counts_list_items_and_choices_as_two_patterns_would() -> None:
    rng = random.Random(3)
    markers = ["1.", "12)", "123.", "-", "*", "•", "(a)", "B)", "c.", "D:", "h:", "i)", "x", ""]
    lines = [
        "".join(
            rng.choice(["\n", "", "\n\n"])
            + rng.choice(["", " ", "\t", "  "])
            + rng.choice(markers)
            + rng.choice(["", " ", "\t"])
            + rng.choice(["word", "", "\n", " x"])
            for _ in range(rng.randint(0, 12))
        )
        for _ in range(3000)
    ]
    seen_both = 0
    for text in [*texts(), *lines]:
        found = extract(text)
        ask = "\n" + found.ask
        items, choices = len(LIST_ITEM.findall(ask)), len(CHOICE.findall(ask))
        assert found.choices == choices
        sequence_words = sum(found.word_counts[w] for w in features._SEQUENCE_WORDS)
        assert (
            found.steps
            - sequence_words
            - sum(
                1
                for gate, phrase in features._SEQUENCE_PHRASES
                if gate in found.word_counts and phrase in found.lowered
            )
            == items
        )
        seen_both += bool(items and choices)
    assert seen_both > 100  # the generated texts do mix the two


def test_counted_words_are_counted_as_one_lookup_each_would() -> None:
    for text in [*texts(), "if and or but not never first then def lambda int str " * 3]:
        found = extract(text)
        counts = found.word_counts
        negations = sum(counts[w] for w in features._NEGATION_WORDS)
        clauses = sum(counts[w] for w in features._CLAUSE_WORDS)
        assert found.negations == negations
        assert found.ask_clauses == found.ask.count(",") + found.ask.count(";") + clauses


def test_the_cache_is_keyed_by_what_is_read_so_a_long_prompt_is_not_hashed_whole() -> None:
    head, tail = "Ask: what is this? " + "same " * 1_000, " end" * 300
    first = extract(head + "alpha " * 20_000 + tail)
    second = extract(head + "omega " * 20_000 + tail)
    # the same head and tail and the same length: the same measures, by definition
    assert first == second
    assert extract(head + "alpha " * 20_000 + "x " + tail).chars == first.chars + 2
    text = "Summarize: " + "word " * 9_000
    assert extract(text) == features._measure.__wrapped__(scanned(text), len(text))


def test_ngram_ids_are_the_hashed_counts_of_the_terms() -> None:
    meta = ("\x00task=code", "\x00tenant=acme")
    samples = [extract(text).tokens for text in texts(1000)]
    samples += [("café", "naïve", "x"), ("lone", "\ud800", "surrogate"), (), ("one",)]
    for tokens in samples:
        expected = hashed_counts(terms(tokens), meta)
        assert ngram_ids(tuple(tokens[:96]), meta) == expected
        assert ngram_ids(tuple(tokens[:96])) == hashed_counts(terms(tokens))
        assert sum(expected.values()) == len(terms(tokens)) + len(meta)


def test_ngram_ids_counts_repeats() -> None:
    ids = ngram_ids(("to", "be", "or", "not", "to", "be"))
    twice, once = ("to", "be", "to be"), ("or", "not", "be or", "or not", "not to")
    assert ids == {**{term_id(t): 2 for t in twice}, **{term_id(t): 1 for t in once}}
