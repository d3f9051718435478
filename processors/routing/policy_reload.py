"""Hot reload: the policy in a file, re-read when the file changes, without a restart.

The router asks `source.current()` for every message, so it must be cheap: a
clock read and a comparison, almost always. At most every `check_every_s`
seconds the call also stats the file; only when its modification time, size
or inode changed is it read and parsed. A good file replaces the policy in
one reference assignment (an atomic swap: a message is routed wholly under
the old policy or wholly under the new one). A bad file — invalid TOML, an
unknown key, a model the catalog lacks, a half-written file — is logged and
ignored: the last good policy stays in force, and the next change is tried
again. A file that disappears also leaves the last good policy in force.

Write policy files atomically (write a temporary file, then rename it over
the old one) so a reload never sees a half-written file; the check after the
read (the file's stamp must not change while it is read) catches most
non-atomic writers anyway.

The watching itself (stamp, re-stat, swap, refusal) is `file_reload.FileReloader`'s,
shared with the hot-reloaded classifier (`classifiers.reloading`).

`FixedPolicy` is the same interface for a policy that never changes.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.file_reload import Clock, FileReloader, Stamp
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_file import PolicyFileError, parse_policy, problems
from tierline.processors.routing.tier_rules import TierRules

log = logging.getLogger("tierline.policy")

Validate = Callable[[Policy], Sequence[str]]


class PolicySource(Protocol):
    def current(self) -> Policy: ...


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    policy: Policy

    def current(self) -> Policy:
        return self.policy


class PolicyReloader:
    """The policy in `path`, reloaded when the file changes (checked every `check_every_s`).

    The watching is `file_reload.FileReloader`'s; this adds the parse (TOML, the
    defaults, the optional validation) and the log lines.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_every_s: float = 5.0,
        defaults: Policy | None = None,
        validate: Validate | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.defaults = defaults
        self._validate = validate
        # The first load must succeed: a bad policy at start is a configuration error.
        self._file = FileReloader(
            path,
            self._parse,
            check_every_s=check_every_s,
            errors=(UnicodeDecodeError, PolicyFileError),
            clock=clock,
            on_reload=self._reloaded,
            on_refuse=self._refused,
        )

    @property
    def reloads(self) -> int:
        """How many times a changed file was swapped in."""
        return self._file.reloads

    @property
    def last_error(self) -> str | None:
        """Why the last attempted reload was refused (None after a good one)."""
        return self._file.last_error

    def current(self) -> Policy:
        """The policy in force. Cheap; at most every `check_every_s` it also stats the file."""
        return self._file.current()

    def check(self) -> bool:
        """Look at the file now; True when a new policy was swapped in."""
        return self._file.check()

    def _parse(self, content: bytes, stamp: Stamp) -> Policy:
        # decoded as `Path.read_text()` decodes (the locale's encoding, universal newlines)
        text = io.TextIOWrapper(io.BytesIO(content)).read()
        source = f"{self.path}@{stamp[0] // 1_000_000_000}"
        policy = parse_policy(text, defaults=self.defaults, source=source)
        found = list(self._validate(policy)) if self._validate is not None else []
        if found:
            raise PolicyFileError(f"{self.path}: " + "; ".join(found))
        return policy

    @staticmethod
    def _reloaded(policy: Policy) -> None:
        log.info("policy reloaded from %s", policy.source)

    def _refused(self, why: str, stamp: Stamp | None) -> None:
        if why != self._file.last_error:
            log.warning("policy file not reloaded, keeping the last good policy: %s", why)


def open_policy_source(
    path: str | Path | None,
    *,
    defaults: Policy,
    check_every_s: float = 5.0,
    catalog: Catalog | None = None,
) -> PolicySource:
    """A reloading source for the file at `path`, or the fixed `defaults` when there is none.

    With a catalog, a file naming models it lacks is refused (at start: an error;
    on reload: logged, the last good policy kept).
    """
    if not path:
        return FixedPolicy(defaults)
    validate: Validate | None = None
    if catalog is not None:
        known = catalog

        def validate(policy: Policy) -> Sequence[str]:
            return problems(policy, known)

    return PolicyReloader(
        Path(path), check_every_s=check_every_s, defaults=defaults, validate=validate
    )


def as_source(policy: PolicySource | Policy | TierRules) -> PolicySource:
    """Anything a router may be given as its policy, as a source it can ask per message."""
    if isinstance(policy, (Policy, TierRules)):
        return FixedPolicy(Policy.of(policy))
    return policy
