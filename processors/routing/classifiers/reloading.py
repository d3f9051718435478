"""The learned classifier, swapped for a new artifact when its file changes, without a restart.

`ReloadingClassifier(path)` is a `Classifier` that delegates every request to
the `LearnedClassifier` of the artifact in `path`, and watches the file the
way the policy file is watched (`file_reload.FileReloader`): at most every
`check_every_s` seconds a stat, a read and a parse only when the file's stamp
changed, and an atomic swap of the whole model, so a request is scored
wholly by the old artifact or wholly by the new one.

A new artifact is taken only if it can be trusted to score: it must be JSON
in the learned-router format at a version this tierline reads, well formed
(`learned.artifact_from_json`), hold only finite numbers, and score the fixed
`PROBES` with probabilities and confidences in [0, 1]. Anything else is
refused, logged at WARNING once per distinct file (stamp), and the last good
artifact stays in force; the next change is tried again. The first load must
succeed: a bad artifact at start is a configuration error and raises.

`artifact_id` names the artifact in force: the `id` in its training metadata
when it has one, else `sha256:` and the first 12 hex digits of the file's
SHA-256, so the router can record which artifact scored each request.
`current()` returns the classifier and its id together, from one read of the
reference, for a caller that needs both to agree across a swap.

Deploy a new artifact atomically: write it next to the old one, then rename
it over it (`os.replace`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tierline.processors.routing.classifiers.base import Classification
from tierline.processors.routing.classifiers.learned import (
    Artifact,
    ArtifactError,
    LearnedArtifact,
    LearnedClassifier,
    artifact_from_json,
)
from tierline.processors.routing.file_reload import Clock, FileReloader, Stamp
from tierline.schemas import RouteRequest

log = logging.getLogger("tierline.classifier")

#: prompts every new artifact must score sensibly before it is put in force
PROBES: tuple[str, ...] = (
    "",
    "hi",
    "What is the capital of France?",
    "Prove that there are infinitely many primes, then write a Python function "
    "`primes(n: int) -> list[int]` returning the first n of them, with tests.\n\n"
    "1. State the theorem.\n2. Give the proof.\n3. Write the code.",
)
#: the longest training `id` used as the artifact's id (the feature record holds 128)
MAX_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class LoadedArtifact:
    """A checked artifact, ready to score, and what identifies it."""

    classifier: LearnedClassifier
    artifact_id: str
    sha256: str
    #: the file and its modification time (whole seconds), as in the log lines
    source: str


def artifact_id(artifact: Artifact, sha256: str) -> str:
    """The training metadata's `id` when it has a usable one, else the file's hash prefix."""
    named = artifact.training.get("id")
    if isinstance(named, str) and 0 < len(named) <= MAX_ID_CHARS:
        return named
    return "sha256:" + sha256[:12]


def parse_artifact(content: bytes, source: str) -> LoadedArtifact:
    """The artifact in `content` (a file's bytes), checked; `ArtifactError` says why not."""
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise ArtifactError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{source}: not JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{source}: an artifact is a JSON object")
    try:
        artifact = artifact_from_json(data)
        _check_finite(artifact)
        classifier = LearnedClassifier(artifact)
        for probe in PROBES:
            _check_verdict(probe, classifier.classify_text(probe))
    except ArtifactError as error:
        raise ArtifactError(f"{source}: {error}") from None
    except (ValueError, ArithmeticError, LookupError, TypeError, AttributeError) as error:
        raise ArtifactError(f"{source}: unusable artifact: {error!r}") from None
    sha256 = hashlib.sha256(content).hexdigest()
    return LoadedArtifact(classifier, artifact_id(artifact, sha256), sha256, source)


def _check_finite(artifact: Artifact) -> None:
    """Every weight, mean, scale and idf is a finite number (JSON may say NaN or Infinity;
    scoring clips the logit, so a NaN weight would not show in the probabilities)."""
    numbers: list[Iterable[float]]
    if isinstance(artifact, LearnedArtifact):
        numbers = [
            (artifact.bias,),
            artifact.dense_weights,
            artifact.dense_mean,
            artifact.dense_scale,
            artifact.ngram_weights.values(),
        ]
    else:
        numbers = [
            (artifact.intercept,),
            artifact.idf.values(),
            artifact.weights.values(),
            artifact.dense_mean,
            artifact.dense_scale,
            artifact.dense_weights,
        ]
    for block in numbers:
        if not all(map(math.isfinite, block)):
            raise ArtifactError("the artifact holds a number that is not finite")


def _check_verdict(probe: str, verdict: Classification) -> None:
    for what, value in (("score", verdict.score), ("confidence", verdict.confidence)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ArtifactError(f"the probe {probe[:30]!r} gets {what} {value!r}, not in [0, 1]")


class ReloadingClassifier:
    """The learned classifier of the artifact in `path`, reloaded when the file changes."""

    name = "learned"

    def __init__(
        self, path: Path, *, check_every_s: float = 5.0, clock: Clock = time.monotonic
    ) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._warned: tuple[str, Stamp | None] | None = None
        # The first load must succeed: ArtifactError (or OSError) propagates.
        self._file = FileReloader(
            path,
            self._parse,
            check_every_s=check_every_s,
            errors=(ArtifactError,),
            clock=clock,
            on_reload=self._reloaded,
            on_refuse=self._refused,
        )

    def classify(self, request: RouteRequest) -> Classification:
        return self._file.current().classifier.classify(request)

    def current(self) -> LoadedArtifact:
        """The artifact in force (checking the file first when `check_every_s` has passed)."""
        return self._file.current()

    def check(self) -> bool:
        """Look at the file now; True when a new artifact was swapped in."""
        return self._file.check()

    @property
    def artifact_id(self) -> str:
        """The id of the artifact in force (does not look at the file)."""
        return self._file.value.artifact_id

    @property
    def learner(self) -> str:
        return self._file.value.classifier.learner

    @property
    def reloads(self) -> int:
        """How many times a changed artifact was swapped in."""
        return self._file.reloads

    @property
    def last_error(self) -> str | None:
        """Why the last attempted reload was refused (None after a good one)."""
        return self._file.last_error

    def _parse(self, content: bytes, stamp: Stamp) -> LoadedArtifact:
        return parse_artifact(content, f"{self.path}@{stamp[0] // 1_000_000_000}")

    @staticmethod
    def _reloaded(loaded: LoadedArtifact) -> None:
        log.info(
            "classifier artifact reloaded from %s (%s, %s)",
            loaded.source,
            loaded.classifier.learner,
            loaded.artifact_id,
        )

    def _refused(self, why: str, stamp: Stamp | None) -> None:
        if (why, stamp) != self._warned:
            log.warning(
                "classifier artifact not reloaded, keeping %s: %s",
                self._file.value.artifact_id,
                why,
            )
        self._warned = (why, stamp)
