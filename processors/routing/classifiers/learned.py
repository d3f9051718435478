"""The learned classifier: logistic regression over the ask's words and the rules' features.

It reads a prompt the way the rules classifier does (`features.extract`, the
rules' task and score) and adds the ask's words: unigrams, bigrams and the
opening word, a vocabulary chosen at training time. A linear model over those
turns them into the probability that the weak model falls short where the
strong one does not: the routing score.

Why a vocabulary and not feature hashing: Python salts `str` hashes per
process, a stable hash (crc32) per n-gram costs more than a dict lookup, and a
vocabulary keeps the model explainable: the n-grams that pushed a score up
are the reasons.

Inference is pure Python (no numpy at run time): one `extract`, one
tokenisation, a dict lookup per n-gram, a sigmoid. The model lives in a
versioned JSON artifact (`ARTIFACT_FORMAT`, `ARTIFACT_VERSION`) holding the
feature configuration, the weights and the training metadata; `training`
writes it, `LearnedClassifier.load` reads it.

Two learners share the artifact (`"learner"` in it, format version 2; version
1 files are the `ngram` learner and still load):

* `ngram` (this module): binary n-gram presence scaled by 1/sqrt(#n-grams) plus
  the dense features, fitted by `processors.learning.fitting` (Adam) and
  blended with the rules' score and length.
* `tfidf` (`classifiers.tfidf`): scikit-learn's TF-IDF (word 1-2-grams,
  sublinear tf, L2 norm) + L2 logistic regression with C chosen by
  cross-validated APGR, optionally with the dense features appended; fitted by
  `processors.learning.tfidf_training`, scored here in pure Python.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from tierline.processors.routing.classifiers.base import Classification
from tierline.processors.routing.classifiers.features import PromptFeatures, extract
from tierline.processors.routing.classifiers.hashed_terms import meta_terms
from tierline.processors.routing.classifiers.rules import TASKS, RulesClassifier
from tierline.processors.routing.classifiers.tfidf import TfidfArtifact, TfidfScorer, sigmoid
from tierline.schemas import RouteRequest

ARTIFACT_FORMAT = "tierline.learned-router"
ARTIFACT_VERSION = 2
#: versions this tierline reads: 1 (ngram learner only, no "learner" key) and 2
READABLE_VERSIONS = (1, 2)
LEARNERS = ("ngram", "tfidf")
MAX_TOKENS = 96

DENSE_FEATURES: tuple[str, ...] = (
    "rules_score",
    "log_ask_words",
    "log_chars",
    "log_ask_digits",
    "log_ask_clauses",
    "log_shots",
    "log_choices",
    "log_code_marks",
    "log_math_marks",
    "log_steps",
    "output_format",
    "log_negations",
    "mean_word_length",
    *(f"task={task}" for task in TASKS),
    # Complexity reads differently for technical asks (a longer spec is a harder function)
    # than for questions in prose: the same measures, counted only for code and math.
    "technical*log_ask_words",
    "technical*log_ask_digits",
    "technical*log_ask_clauses",
    "technical*log_steps",
)
TECHNICAL_TASKS = frozenset({"code", "math"})


class ArtifactError(ValueError):
    """An artifact this version of tierline cannot read."""


@dataclass(frozen=True, slots=True)
class Featurized:
    """A prompt as the model sees it."""

    dense: tuple[float, ...]
    ngrams: frozenset[str]
    rules: Classification


def ngrams(tokens: Sequence[str], max_tokens: int = MAX_TOKENS) -> frozenset[str]:
    """Unigrams, bigrams and the opening word (`^word`) of the first `max_tokens` tokens."""
    head = tokens[:max_tokens]
    opening = ("^" + head[0],) if head else ()
    return frozenset(chain(head, map(" ".join, zip(head, head[1:], strict=False)), opening))


def featurize(text: str, task_hint: str | None = None, max_tokens: int = MAX_TOKENS) -> Featurized:
    """The dense features (in `DENSE_FEATURES` order), the n-grams and the rules' verdict."""
    features = extract(text)
    rules = RulesClassifier.verdict(features, task_hint)
    return Featurized(dense_features(features, rules), ngrams(features.tokens, max_tokens), rules)


def dense_features(features: PromptFeatures, rules: Classification) -> tuple[float, ...]:
    tokens = features.tokens
    mean_word = sum(map(len, tokens)) / len(tokens) if tokens else 0.0
    words = math.log1p(features.ask_words)
    digits = math.log1p(features.ask_digits)
    clauses = math.log1p(features.ask_clauses)
    steps = math.log1p(features.steps)
    technical = 1.0 if rules.task in TECHNICAL_TASKS else 0.0
    return (
        rules.score,
        words,
        math.log1p(features.chars),
        digits,
        clauses,
        math.log1p(features.shots),
        math.log1p(features.choices),
        math.log1p(features.code_marks),
        math.log1p(features.math_marks),
        steps,
        1.0 if features.output_format else 0.0,
        math.log1p(features.negations),
        mean_word,
        *(1.0 if rules.task == task else 0.0 for task in TASKS),
        technical * words,
        technical * digits,
        technical * clauses,
        technical * steps,
    )


@dataclass(frozen=True)
class LearnedArtifact:
    """A trained router: weights plus everything needed to trust and reproduce them.

    `dense_mean`/`dense_scale` standardise the dense features; n-gram features
    are present/absent, scaled by 1/sqrt(number of n-grams in the prompt).
    """

    bias: float
    dense_weights: tuple[float, ...]
    dense_mean: tuple[float, ...]
    dense_scale: tuple[float, ...]
    ngram_weights: Mapping[str, float]
    max_tokens: int = MAX_TOKENS
    dense_features: tuple[str, ...] = DENSE_FEATURES
    training: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "learner": "ngram",
            "features": {
                "dense": list(self.dense_features),
                "dense_mean": list(self.dense_mean),
                "dense_scale": list(self.dense_scale),
                "ngrams": {"n": [1, 2], "opening_word": True, "max_tokens": self.max_tokens},
            },
            "weights": {
                "bias": self.bias,
                "dense": list(self.dense_weights),
                "ngrams": dict(sorted(self.ngram_weights.items())),
            },
            "training": dict(self.training),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LearnedArtifact:
        if _learner(data) != "ngram":
            raise ArtifactError("a tfidf artifact: load it with `load_artifact`")
        try:
            features, weights = data["features"], data["weights"]
            names = tuple(str(name) for name in features["dense"])
            if names != DENSE_FEATURES:
                raise ArtifactError(
                    f"artifact's dense features differ from this tierline's: {names}"
                )
            artifact = cls(
                bias=float(weights["bias"]),
                dense_weights=tuple(float(w) for w in weights["dense"]),
                dense_mean=tuple(float(m) for m in features["dense_mean"]),
                dense_scale=tuple(float(s) for s in features["dense_scale"]),
                ngram_weights={str(g): float(w) for g, w in weights["ngrams"].items()},
                max_tokens=int(features["ngrams"]["max_tokens"]),
                dense_features=names,
                training=dict(data.get("training", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(f"malformed artifact: {error!r}") from None
        width = len(DENSE_FEATURES)
        if not (len(artifact.dense_weights) == len(artifact.dense_mean) == width):
            raise ArtifactError("artifact's dense weights do not match its features")
        if len(artifact.dense_scale) != width or any(s <= 0 for s in artifact.dense_scale):
            raise ArtifactError("artifact's dense scales must be positive, one per feature")
        return artifact

    def save(self, path: str | Path) -> None:
        save_artifact(self, path)

    @classmethod
    def load(cls, path: str | Path) -> LearnedArtifact:
        artifact = load_artifact(path)
        if not isinstance(artifact, LearnedArtifact):
            raise ArtifactError(f"{path}: a tfidf artifact, not an ngram one")
        return artifact


Artifact = LearnedArtifact | TfidfArtifact


def _learner(data: Mapping[str, Any]) -> str:
    """Check format and version; the artifact's learner (version 1 files are `ngram`)."""
    if data.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"not a learned-router artifact (format={data.get('format')!r})")
    version = data.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"artifact format_version {version!r}; this tierline reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    learner = data.get("learner", "ngram") if version == 2 else "ngram"
    if learner not in LEARNERS:
        raise ArtifactError(f"unknown learner {learner!r} (this tierline knows {LEARNERS})")
    return str(learner)


def tfidf_to_json(artifact: TfidfArtifact) -> dict[str, Any]:
    return {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "learner": "tfidf",
        "features": artifact.features_json(),
        "weights": artifact.weights_json(),
        "training": dict(artifact.training),
    }


def artifact_from_json(data: Mapping[str, Any]) -> Artifact:
    """Either learner's artifact from its JSON; `ArtifactError` if it is not one."""
    if _learner(data) == "ngram":
        return LearnedArtifact.from_json(data)
    try:
        artifact = TfidfArtifact.from_parts(
            data["features"], data["weights"], data.get("training", {})
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ArtifactError(f"malformed tfidf artifact: {error!r}") from None
    if artifact.dense_features and artifact.dense_features != DENSE_FEATURES:
        raise ArtifactError("artifact's dense features differ from this tierline's")
    return artifact


def save_artifact(artifact: Artifact, path: str | Path) -> None:
    data = artifact.to_json() if isinstance(artifact, LearnedArtifact) else tfidf_to_json(artifact)
    text = json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_artifact(path: str | Path) -> Artifact:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: not JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: an artifact is a JSON object")
    return artifact_from_json(data)


def confidence_of(score: float) -> float:
    """How sure a learned verdict is: `max(p, 1 - p)`, the probability that the side of 0.5
    the score `p` is on is the right one, when `p` is calibrated (`tierline eval` reports
    both its calibration and this confidence's accuracy per bin).

    It replaced a vocabulary-coverage heuristic, `0.4 + 0.5 * min(1, coverage / 0.5)`,
    after a measurement: train on the RouterBench arc/mbpp/winogrande train splits, score
    the test splits (strong gpt-4-1106-preview, weak mixtral-8x7b or mistral-7b, both
    learners). As a predictor of whether the decision "score >= 0.5" was right, coverage
    carried no information (AUROC 0.48-0.51 on every split: it saturates at 0.9 for most
    prompts), and as P(right) its Brier score was worse pooled in all four cases (e.g.
    tfidf/mixtral 0.1446 vs 0.1386, 0.1362 calibrated); `max(p, 1 - p)` had AUROC
    0.54-0.63 pooled for three of the four, and is only as good as the score's own
    ranking (ngram/mixtral ranks below chance on those test splits: 0.43, where coverage
    had 0.49). Note the range: [0.5, 1], where coverage gave [0.4, 0.9]; a policy's
    `confidence_floor` above 0.5 now escalates the verdicts nearest 0.5.
    """
    return round(max(score, 1.0 - score), 6)


class LearnedClassifier:
    """Scores a request with a trained artifact; reasons name the task and the top n-grams."""

    name = "learned"

    def __init__(self, artifact: LearnedArtifact | TfidfArtifact) -> None:
        if isinstance(artifact, TfidfArtifact):
            self._tfidf: TfidfScorer | None = TfidfScorer(artifact)
            self._max_tokens = MAX_TOKENS
            self._dense: tuple[float, ...] = ()
            self._bias = 0.0
            self._ngrams: dict[str, float] = {}
            return
        self._tfidf = None
        self._max_tokens = artifact.max_tokens
        self.artifact = artifact
        # Fold standardisation into the weights once: z = bias' + sum(w'_i * x_i).
        self._dense = tuple(
            w / s for w, s in zip(artifact.dense_weights, artifact.dense_scale, strict=True)
        )
        self._bias = artifact.bias - sum(
            w * m / s
            for w, m, s in zip(
                artifact.dense_weights, artifact.dense_mean, artifact.dense_scale, strict=True
            )
        )
        self._ngrams = dict(artifact.ngram_weights)

    @classmethod
    def load(cls, path: str | Path) -> LearnedClassifier:
        return cls(load_artifact(path))

    @property
    def learner(self) -> str:
        return "ngram" if self._tfidf is None else "tfidf"

    @property
    def hashed(self) -> bool:
        """Whether it reads hashed term ids (and so can score recorded features)."""
        return self._tfidf is not None and self._tfidf.hashed

    @property
    def vocabulary_size(self) -> int:
        """How many n-grams / terms carry a weight."""
        return len(self._ngrams) if self._tfidf is None else len(self._tfidf.artifact.weights)

    def classify(self, request: RouteRequest) -> Classification:
        meta: Sequence[str] = ()
        if self._tfidf is not None and self._tfidf.hashed:
            meta = meta_terms(request.hints.task, request.metadata.feature, request.tenant)
        return self.classify_text(request.prompt_text(), task_hint=request.hints.task, meta=meta)

    def classify_text(
        self, text: str, task_hint: str | None = None, meta: Sequence[str] = ()
    ) -> Classification:
        """`meta`: the request's metadata terms (`hashed_terms.meta_terms`), which only a
        hashed tf-idf artifact reads."""
        if self._tfidf is not None:
            return self._classify_tfidf(self._tfidf, text, task_hint, meta)
        x = featurize(text, task_hint, self._max_tokens)
        weights = self._ngrams
        known = weights.keys() & x.ngrams
        score = self._probability(x, math.fsum(map(weights.__getitem__, known)))
        reasons = [x.rules.reasons[0], f"learned p={score:.2f}"]
        if known:
            top = max(known, key=weights.__getitem__)
            if weights[top] > 0:
                reasons.append(f"words like '{top}'")
        score = round(score, 6)
        return Classification(x.rules.task, score, confidence_of(score), tuple(reasons))

    def score_text(self, text: str, task_hint: str | None = None) -> float:
        """The unrounded probability `classify_text` reports (tests compare it with sklearn)."""
        if self._tfidf is not None:
            return sigmoid(self._tfidf_logit(self._tfidf, text, task_hint)[0])
        return self.score_featurized(featurize(text, task_hint, self._max_tokens))

    @staticmethod
    def _tfidf_logit(
        model: TfidfScorer, text: str, task_hint: str | None, meta: Sequence[str] = ()
    ) -> tuple[float, str | None, Classification]:
        """One `extract` feeds both the tf-idf block (the ask) and the dense features."""
        features = extract(text)
        rules = RulesClassifier.verdict(features, task_hint)
        part, top = model.text_logit(features.tokens, meta)
        z = model.bias + part
        if model.uses_dense:
            dense = dense_features(features, rules)
            z += math.fsum(map(operator.mul, model.dense, dense))
        return z, top, rules

    @classmethod
    def _classify_tfidf(
        cls, model: TfidfScorer, text: str, task_hint: str | None, meta: Sequence[str] = ()
    ) -> Classification:
        z, top, rules = cls._tfidf_logit(model, text, task_hint, meta)
        score = sigmoid(z)
        reasons = [rules.reasons[0], f"learned p={score:.2f}"]
        if top:
            reasons.append(f"words like '{top}'")
        score = round(score, 6)
        return Classification(rules.task, score, confidence_of(score), tuple(reasons))

    def score_recorded(self, ids: Mapping[int, int], dense: Sequence[float]) -> float:
        """The probability for a request's recorded features (`FeatureRecord`: term-id
        counts and `DENSE_FEATURES`), as it scored at route time; hashed tf-idf only."""
        model = self._tfidf
        if model is None or not model.hashed:
            raise ArtifactError("only a hashed tf-idf artifact scores recorded features")
        z = model.bias + model.id_logit(ids)
        if model.uses_dense:
            z += math.fsum(map(operator.mul, model.dense, dense))
        return sigmoid(z)

    def score_featurized(self, x: Featurized) -> float:
        """The score of an already-featurized prompt (training's cross-validation uses it)."""
        weights = self._ngrams
        return self._probability(x, math.fsum(map(weights.__getitem__, weights.keys() & x.ngrams)))

    def logit_featurized(self, x: Featurized) -> float:
        """The model's log-odds for an already-featurized prompt, unclipped (training uses it)."""
        weights = self._ngrams
        return self._logit(x, math.fsum(map(weights.__getitem__, weights.keys() & x.ngrams)))

    def _logit(self, x: Featurized, ngram_sum: float) -> float:
        z = self._bias + math.fsum(map(operator.mul, self._dense, x.dense))
        if x.ngrams:
            z += ngram_sum / math.sqrt(len(x.ngrams))
        return z

    def _probability(self, x: Featurized, ngram_sum: float) -> float:
        z = self._logit(x, ngram_sum)
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
