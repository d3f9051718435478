"""The rules classifier: fast, explainable routing from keywords and structure.

Two steps. First the *task*: the application's `hints.task` when given,
otherwise the task whose keywords the ask matches most (code, math,
extraction, ...), falling back to `qa` for questions and `chat` for the rest.
Each task has a prior: how often a cheap model falls short on it.

Then the *ask's complexity* moves the score off the prior: a longer ask, more
clauses and digits, numbered or sequenced steps, code, math notation, a
required output format, negations ("which is NOT ..."), a very long context.
Each contribution is small and saturating, so no single feature decides, and
each one that fires leaves a reason ("task=code", "multi-step instructions").

Costs one capped `features.extract` pass plus a few dict lookups: about
70 µs median and 130 µs p99 per request on one core of this project's 2-core
VM (`python bench/classifier_bench.py`, a prompt's median of 3 calls).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tierline.processors.routing.classifiers.base import Classification
from tierline.processors.routing.classifiers.features import PromptFeatures, extract
from tierline.schemas import RouteRequest

TASKS = (
    "code",
    "math",
    "reasoning",
    "extraction",
    "classification",
    "summarization",
    "translation",
    "creative_writing",
    "qa",
    "chat",
)

# How likely a cheap model falls short on a task, before looking at the ask.
TASK_PRIOR: Mapping[str, float] = {
    "code": 0.50,
    "math": 0.50,
    "reasoning": 0.45,
    "creative_writing": 0.30,
    "qa": 0.28,
    "extraction": 0.22,
    "summarization": 0.22,
    "translation": 0.22,
    "classification": 0.15,
    "chat": 0.10,
}
UNKNOWN_TASK_PRIOR = 0.30

_TASK_WORDS: Mapping[str, str] = {
    word: task
    for task, words in {
        "code": "code function python javascript typescript java rust golang sql regex script"
        " compile compiler debug bug refactor implement api algorithm"
        " snippet traceback html css bash docker kubernetes",
        "math": "calculate compute solve equation integral derivative probability percent"
        " percentage average ratio prove proof geometry algebra arithmetic factorial prime"
        " divisible fraction sum quotient remainder",
        "reasoning": "why explain reason reasoning logic logical puzzle infer deduce analyze"
        " analyse compare tradeoffs evaluate argue justify implications riddle",
        "extraction": "extract entities fields parse",
        "classification": "classify categorize categorise category sentiment label spam",
        "summarization": "summarize summarise summary tldr condense shorten takeaways",
        "translation": "translate translation",
        "creative_writing": "poem story stories song lyrics haiku limerick essay fiction novel"
        " screenplay slogan joke creative imagine",
        "chat": "hi hello hey thanks thank cheers bye goodbye",
    }.items()
    for word in words.split()
}
_TASK_WORD_SET = frozenset(_TASK_WORDS)
# (gate word, phrase, task): the phrase is looked for only when its gate word is in the ask.
_TASK_PHRASES: tuple[tuple[str, str, str], ...] = (
    ("many", "how many", "math"),
    ("much", "how much", "math"),
    ("sum", "sum of", "math"),
    ("step", "step by step", "reasoning"),
    ("explains", "best explains", "reasoning"),
    ("out", "pull out", "extraction"),
    ("all", "list all", "extraction"),
    ("all", "find all", "extraction"),
    ("points", "key points", "extraction"),
    ("negative", "positive or negative", "classification"),
    ("dr", "tl;dr", "summarization"),
    ("english", "into english", "translation"),
    ("french", "into french", "translation"),
    ("spanish", "into spanish", "translation"),
    ("german", "into german", "translation"),
    ("chinese", "into chinese", "translation"),
    ("letter", "write a letter", "creative_writing"),
    ("speech", "write a speech", "creative_writing"),
    ("test", "unit test", "code"),
    ("trace", "stack trace", "code"),
)
#: the phrases by gate word, so one set intersection finds the gates an ask has
_PHRASES_BY_GATE: Mapping[str, tuple[tuple[str, str], ...]] = {
    gate: tuple((phrase, task) for g, phrase, task in _TASK_PHRASES if g == gate)
    for gate, _, _ in _TASK_PHRASES
}
_PHRASE_GATES = frozenset(_PHRASES_BY_GATE)
_QUESTION_WORDS = frozenset({"what", "who", "when", "where", "which", "how"})


def _last_user_text(request: RouteRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text()
    return ""


def _saturating(value: float, scale: float) -> float:
    """0 at 0, 0.63 at `scale`, approaching 1: diminishing returns for every feature."""
    return 1.0 - math.exp(-value / scale)


def detect_task(features: PromptFeatures) -> tuple[str, int]:
    """The task the ask reads as, and how many keyword hits chose it (0 = fallback)."""
    hits: dict[str, int] = {}
    counts = features.word_counts
    for word in _TASK_WORD_SET.intersection(counts):
        task = _TASK_WORDS[word]
        hits[task] = hits.get(task, 0) + 1
    lowered = features.lowered
    for gate in _PHRASE_GATES.intersection(counts):
        for phrase, task in _PHRASES_BY_GATE[gate]:
            if phrase in lowered:
                hits[task] = hits.get(task, 0) + 1
    if features.code_marks:
        hits["code"] = hits.get("code", 0) + min(features.code_marks, 3)
    if features.math_marks:
        hits["math"] = hits.get("math", 0) + min(features.math_marks, 3)
    if hits:
        most = max(hits.values())  # ties go to the task listed first in TASKS
        return next(task for task in TASKS if hits.get(task) == most), most
    if features.choices >= 2 or "?" in lowered or _QUESTION_WORDS.intersection(counts):
        return "qa", 0
    return "chat", 0


class RulesClassifier:
    """Scores a request from its task and the complexity of its ask; explains every point."""

    name = "rules"

    def classify(self, request: RouteRequest) -> Classification:
        """Judge the ask: the last user turn.

        A chat request carries a system prompt written once for thousands of
        calls (policies, label lists, schemas); its length, clauses and keywords
        say nothing about how hard this one ask is (measured on the demo
        workload: scoring it pushed easy asks up a tier), so it is not scored.
        """
        ask = _last_user_text(request)
        if not ask:
            return self.classify_text(request.prompt_text(), task_hint=request.hints.task)
        return self.verdict(extract(ask), request.hints.task)

    def classify_text(self, text: str, task_hint: str | None = None) -> Classification:
        """The same verdict for bare prompt text: what evaluation and benchmarks call."""
        return self.verdict(extract(text), task_hint)

    @staticmethod
    def verdict(features: PromptFeatures, task_hint: str | None = None) -> Classification:
        """The verdict on already-extracted features (the learned classifier reuses them)."""
        reasons: list[str] = []
        if task_hint:
            task, hits = task_hint.strip().lower(), -1
            reasons.append(f"task={task} (hint)")
        else:
            task, hits = detect_task(features)
            reasons.append(f"task={task}" if hits else f"task={task} (no keywords)")
        score = TASK_PRIOR.get(task, UNKNOWN_TASK_PRIOR)

        words = features.ask_words
        score += 0.22 * _saturating(math.log1p(words), 4.0)
        if words >= 150:
            reasons.append(f"long ask ({words} words)")
        score += 0.05 * _saturating(features.ask_clauses, 6.0)
        if features.ask_clauses >= 6:
            reasons.append(f"many clauses ({features.ask_clauses})")
        score += 0.04 * _saturating(features.ask_digits, 6.0)
        if features.multi_step:
            score += 0.08 * _saturating(features.steps, 3.0)
            reasons.append("multi-step instructions")
        if features.code_marks and task != "code":
            score += 0.05 * _saturating(features.code_marks, 2.0)
            reasons.append("code in prompt")
        if features.math_marks and task != "math":
            score += 0.06 * _saturating(features.math_marks, 2.0)
            reasons.append("math notation")
        if features.output_format:
            score += 0.04
            reasons.append(f"output format={features.output_format}")
        if features.negations:
            score += 0.03 * _saturating(features.negations, 1.0)
        if features.chars > 8000:
            score += 0.08 * _saturating(math.log(features.chars / 8000), 1.5)
            reasons.append(f"long prompt ({features.chars:,} chars)")
        if features.shots:
            reasons.append(f"few-shot ({features.shots} examples)")

        score = min(1.0, max(0.0, score))
        if hits < 0:
            confidence = 0.9
        elif hits == 0:
            confidence = 0.5
        else:
            confidence = min(0.85, 0.55 + 0.1 * hits)
        return Classification(
            task=task, score=round(score, 6), confidence=confidence, reasons=tuple(reasons)
        )
