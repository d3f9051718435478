"""Experiments: split a share of one task's traffic between model choices, by request id.

An experiment names a task, the share of that task's traffic it takes, and
two (or more) arms, each a list of models (and optionally the tier whose
workers serve it; by default the tier the policy chose). Which requests take
part, and which arm each gets, is a pure function of the experiment's name
and the request id: `blake2b(name, id)` gives a uniform number u in [0, 1);
the request is in the experiment when u < share, and its arm is chosen by
u / share against the arms' cumulative weights. So a redelivered request
lands in the same arm, two experiments split independently (the name salts
the hash), and no state is kept anywhere.

The router records the arm as the reason `experiment=<name> arm=<arm>`; it
lands in every cost row of the request, so spend and feedback per arm are one
query over the `decisions` view (see deploy/policy.example.toml).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

from tierline.schemas import RouteRequest, Tier

_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    models: tuple[str, ...]
    weight: float = 1.0
    #: the tier whose workers serve this arm; None = the tier the policy chose
    tier: Tier | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError(f"arm {self.name!r} has no models")
        if not self.weight > 0:
            raise ValueError(f"arm {self.name!r}: weight must be > 0")


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    task: str
    share: float
    arms: tuple[Arm, ...]
    #: only these tenants' requests take part; None = every tenant
    tenants: frozenset[str] | None = None
    #: only requests the policy put on these tiers take part; None = any tier
    tiers: frozenset[Tier] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"experiment {self.name!r}: share must be in [0, 1]")
        if len(self.arms) < 2:
            raise ValueError(f"experiment {self.name!r} needs at least two arms")
        if len({arm.name for arm in self.arms}) != len(self.arms):
            raise ValueError(f"experiment {self.name!r}: arm names must differ")

    def applies_to(self, request: RouteRequest, task: str, tier: Tier) -> bool:
        return (
            task == self.task
            and (self.tenants is None or request.tenant in self.tenants)
            and (self.tiers is None or tier in self.tiers)
        )

    def arm_for(self, request_id: str) -> Arm | None:
        """The arm of `request_id`, or None when it is outside the experiment's share."""
        u = unit_hash(self.name, request_id)
        if u >= self.share:
            return None
        point = u / self.share * sum(arm.weight for arm in self.arms)
        for arm in self.arms:
            point -= arm.weight
            if point < 0:
                return arm
        return self.arms[-1]


def unit_hash(name: str, request_id: str) -> float:
    """A number in [0, 1), uniform over request ids and fixed for (name, request_id)."""
    h = blake2b(name.encode(), digest_size=8)
    h.update(b"\x00")
    h.update(request_id.encode())
    return int.from_bytes(h.digest(), "big") / _SCALE


def assign(
    experiments: Iterable[Experiment], request: RouteRequest, task: str, tier: Tier
) -> tuple[Experiment, Arm] | None:
    """The first experiment that applies and takes this request, with its arm."""
    for experiment in experiments:
        if experiment.applies_to(request, task, tier):
            arm = experiment.arm_for(request.id)
            if arm is not None:
                return experiment, arm
    return None


def reason(experiment: Experiment, arm: Arm) -> str:
    """The reason string that marks a request's arm in its cost rows."""
    return f"experiment={experiment.name} arm={arm.name}"
