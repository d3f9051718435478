"""The policy file: a TOML file that says how requests are routed, parsed into a `Policy`.

Every section is optional; what a file leaves out comes from the defaults it is
parsed over (the thresholds in tierline's own config, say). The format, with
every key, is documented by example in deploy/policy.example.toml:

    [routing]        standard_threshold, premium_threshold, confidence_floor,
                     default_output_tokens
    [tenants.<t>]    the same thresholds and floor, and allowed_tiers
    [[floors]]       task, min_tier, optional feature and tenant
    [cascade]        tasks
    [sensitivity]    <class> = [providers], unlisted = "deny"|"allow", detect
    [[experiments]]  name, task, share, arms = [{name, models, weight, tier}],
                     optional tenants and tiers
    [[budgets]]      tenant ("*" = any without its own), optional feature,
                     period (day|month), limit_usd, optional soft_limit_usd
    [cache]          enabled, ttl_s, temperature_zero, max_entries, max_bytes
                     (read by the tier workers, not the router)
    [trimming]       enabled, strategy ("recent"), min_turns, headroom_tokens
                     (read by the tier workers, not the router)

Parsing is strict: an unknown key, a wrong type or a value out of range is a
`PolicyFileError` naming the key, so a typo never silently changes routing.
`problems(policy, catalog)` adds the checks that need the model catalog (arms
naming models it does not have).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.experiments import Arm, Experiment
from tierline.processors.routing.policy import CacheRules, CascadeRules, Policy
from tierline.processors.routing.sensitivity_filter import SensitivityRules
from tierline.processors.routing.tier_rules import TenantRules, Thresholds, TierFloor, TierRules
from tierline.processors.routing.trim_rules import TrimRules, TrimStrategy
from tierline.processors.spend.budgets import Budget, Budgets
from tierline.schemas import Tier

NAME_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class PolicyFileError(ValueError):
    """The policy file is wrong; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Routing(_Strict):
    standard_threshold: float | None = Field(default=None, ge=0, le=1)
    premium_threshold: float | None = Field(default=None, ge=0, le=1)
    confidence_floor: float | None = Field(default=None, ge=0, le=1)
    default_output_tokens: int | None = Field(default=None, gt=0, le=1_000_000)


class _Tenant(_Strict):
    standard_threshold: float | None = Field(default=None, ge=0, le=1)
    premium_threshold: float | None = Field(default=None, ge=0, le=1)
    confidence_floor: float | None = Field(default=None, ge=0, le=1)
    allowed_tiers: list[Tier] | None = None


class _Floor(_Strict):
    task: str = Field(min_length=1, max_length=64)
    min_tier: Tier
    feature: str | None = Field(default=None, max_length=128)
    tenant: str | None = Field(default=None, max_length=128)


class _Cascade(_Strict):
    tasks: list[str] = Field(default_factory=list)


class _Arm(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    models: list[str] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    tier: Tier | None = None


class _Experiment(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    task: str = Field(min_length=1, max_length=64)
    share: float = Field(ge=0, le=1)
    arms: list[_Arm] = Field(min_length=2)
    tenants: list[str] | None = None
    tiers: list[Tier] | None = None


class _Budget(_Strict):
    tenant: str = Field(min_length=1, max_length=128)
    feature: str | None = Field(default=None, min_length=1, max_length=128)
    period: Literal["day", "month"]
    #: money is a decimal string ("25.00"): a float would not be exact
    limit_usd: str = Field(pattern=r"^\d{1,12}(\.\d{1,9})?$")
    soft_limit_usd: str | None = Field(default=None, pattern=r"^\d{1,12}(\.\d{1,9})?$")

    @field_validator("limit_usd", "soft_limit_usd", mode="before")
    @classmethod
    def _money_as_text(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'write money as a string, e.g. "{value}": a TOML number is not exact')
        return value


class _Cache(_Strict):
    enabled: StrictBool | None = None
    ttl_s: float | None = Field(default=None, gt=0, le=365 * 86400)
    temperature_zero: StrictBool | None = None
    max_entries: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)


class _Trimming(_Strict):
    enabled: StrictBool | None = None
    strategy: TrimStrategy | None = None
    min_turns: int | None = Field(default=None, ge=1, le=10_000)
    headroom_tokens: int | None = Field(default=None, ge=0, le=1_000_000)


class _File(_Strict):
    version: Literal[1] = 1
    routing: _Routing = Field(default_factory=_Routing)
    tenants: dict[str, _Tenant] = Field(default_factory=dict)
    floors: list[_Floor] = Field(default_factory=list)
    cascade: _Cascade | None = None
    sensitivity: dict[str, Any] | None = None
    experiments: list[_Experiment] = Field(default_factory=list)
    budgets: list[_Budget] = Field(default_factory=list)
    cache: _Cache | None = None
    trimming: _Trimming | None = None


def parse_policy(text: str, *, defaults: Policy | None = None, source: str = "<string>") -> Policy:
    """The policy a file's text says, over `defaults` for what it leaves out."""
    base = defaults or Policy()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{source}: not valid TOML: {exc}") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(f"{source}: {_summarize(exc)}") from None
    try:
        return Policy(
            routing=_routing(parsed, base.routing),
            cascade=(
                CascadeRules(frozenset(parsed.cascade.tasks))
                if parsed.cascade is not None
                else base.cascade
            ),
            sensitivity=(
                _sensitivity(parsed.sensitivity)
                if parsed.sensitivity is not None
                else base.sensitivity
            ),
            experiments=_experiments(parsed.experiments),
            default_output_tokens=(
                parsed.routing.default_output_tokens or base.default_output_tokens
            ),
            budgets=_budgets(parsed.budgets) if parsed.budgets else base.budgets,
            cache=_cache(parsed.cache, base.cache) if parsed.cache is not None else base.cache,
            trimming=_trimming(parsed.trimming, base.trimming),
            source=source,
        )
    except ValueError as exc:
        raise PolicyFileError(f"{source}: {exc}") from None


def load_policy(path: Path, *, defaults: Policy | None = None) -> Policy:
    """The policy in the file at `path` (`PolicyFileError` when it is wrong, OSError if absent)."""
    return parse_policy(path.read_text(), defaults=defaults, source=str(path))


def problems(policy: Policy, catalog: Catalog) -> list[str]:
    """What the policy names that the catalog does not have (empty = consistent)."""
    found = []
    for experiment in policy.experiments:
        for arm in experiment.arms:
            unknown = [m for m in arm.models if m not in catalog.models]
            if unknown:
                found.append(
                    f"experiment {experiment.name} arm {arm.name}: unknown models {unknown}"
                )
    return found


# --------------------------------------------------------------------------- sections


def _thresholds(standard: float | None, premium: float | None, base: Thresholds) -> Thresholds:
    return Thresholds(
        standard=base.standard if standard is None else standard,
        premium=base.premium if premium is None else premium,
    )


def _routing(parsed: _File, base: TierRules) -> TierRules:
    section = parsed.routing
    thresholds = _thresholds(section.standard_threshold, section.premium_threshold, base.thresholds)
    tenants: dict[str, TenantRules] = {}
    for name, tenant in parsed.tenants.items():
        own = tenant.standard_threshold is not None or tenant.premium_threshold is not None
        tenants[name] = TenantRules(
            thresholds=(
                _thresholds(tenant.standard_threshold, tenant.premium_threshold, thresholds)
                if own
                else None
            ),
            confidence_floor=tenant.confidence_floor,
            allowed_tiers=(
                frozenset(tenant.allowed_tiers) if tenant.allowed_tiers is not None else None
            ),
        )
    return TierRules(
        thresholds=thresholds,
        confidence_floor=(
            base.confidence_floor if section.confidence_floor is None else section.confidence_floor
        ),
        tenants=tenants or dict(base.tenants),
        floors=tuple(
            TierFloor(task=f.task, min_tier=f.min_tier, feature=f.feature, tenant=f.tenant)
            for f in parsed.floors
        )
        or base.floors,
    )


def _sensitivity(section: Mapping[str, Any]) -> SensitivityRules:
    unlisted = section.get("unlisted", "deny")
    if unlisted not in ("deny", "allow"):
        raise ValueError(f'sensitivity.unlisted must be "deny" or "allow", not {unlisted!r}')
    detect = section.get("detect", True)
    if not isinstance(detect, bool):
        raise ValueError(f"sensitivity.detect must be true or false, not {detect!r}")
    approvals: dict[str, frozenset[str]] = {}
    for name, providers in section.items():
        if name in ("unlisted", "detect"):
            continue
        if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
            raise ValueError(
                f"sensitivity.{name} must be a list of provider names, not {providers!r}"
            )
        approvals[name.lower()] = frozenset(providers)
    return SensitivityRules(approvals=approvals, unlisted=unlisted, detect=detect)


def _experiments(entries: list[_Experiment]) -> tuple[Experiment, ...]:
    names = [e.name for e in entries]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"experiment names must be unique: {duplicated}")
    return tuple(
        Experiment(
            name=e.name,
            task=e.task,
            share=e.share,
            arms=tuple(
                Arm(name=a.name, models=tuple(a.models), weight=a.weight, tier=a.tier)
                for a in e.arms
            ),
            tenants=frozenset(e.tenants) if e.tenants is not None else None,
            tiers=frozenset(e.tiers) if e.tiers is not None else None,
        )
        for e in entries
    )


def _budgets(entries: list[_Budget]) -> Budgets:
    return Budgets(
        tuple(
            Budget(
                tenant=b.tenant,
                feature=b.feature,
                period=b.period,
                limit_usd=Decimal(b.limit_usd),
                soft_limit_usd=Decimal(b.soft_limit_usd) if b.soft_limit_usd is not None else None,
            )
            for b in entries
        )
    )


def _cache(section: _Cache, base: CacheRules) -> CacheRules:
    """The `[cache]` section over `base`: each key it sets replaces the base's."""
    given = {k: v for k, v in section.model_dump().items() if v is not None}
    return replace(base, **given)


def _trimming(section: _Trimming | None, base: TrimRules) -> TrimRules:
    """The `[trimming]` section over `base`: each key it sets replaces the base's."""
    if section is None:
        return base
    return replace(base, **{k: v for k, v in section.model_dump().items() if v is not None})


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
