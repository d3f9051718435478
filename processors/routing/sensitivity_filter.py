"""Sensitive data goes only to providers approved for it: a filter on the candidate list.

A request is *sensitive* for a class ("pii", "financial", "secret", or any
name an operator uses) when the detector (`processors.sensitivity`) finds
that class in its text (the tools it offers and the calls of its history, whose
arguments no message's text holds, included), or when the application says so in
`hints.sensitivity`. The policy file approves providers per class:

    [sensitivity]
    pii = ["openai", "anthropic"]
    financial = ["openai"]
    secret = []                 # never leaves: such requests are refused
    hipaa = ["azure"]           # a class only hints name

A candidate model stays only when its provider is approved for *every* class
the request carries ("*" approves any provider). A class the file does not
list is denied (`unlisted = "deny"`, the default) or unrestricted
(`unlisted = "allow"`), except `secret`: a key or credential in a prompt leaves
only for a provider the file names under `secret`. When no candidate stays,
the request is refused with a typed `policy_denied` error: there is no
fallback to an unapproved provider, ever. Reasons name the classes and the
dropped models, never the data.

With no `[sensitivity]` section the safe defaults hold (`SAFE_DEFAULTS`):
detection runs, a request holding a secret is refused, and personal or
financial data may go to any provider, its class recorded in the reasons (and
so in the cost row). `detect = false` in the section turns detection off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tierline.processors.errors import PolicyError
from tierline.processors.pricing.tool_text import tool_text
from tierline.processors.routing.sensitivity import FINANCIAL, PII, SECRET, detect_sensitive
from tierline.schemas import ErrorType, RouteRequest

ANY_PROVIDER = "*"


@dataclass(frozen=True, slots=True)
class SensitivityRules:
    """Per class, the providers approved to receive it."""

    approvals: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    #: what a class without an approval list means
    unlisted: Literal["deny", "allow"] = "deny"
    #: run the detector on the prompt (hints are honoured either way)
    detect: bool = True
    #: False = no rules at all (no [sensitivity] section)
    enabled: bool = True

    def approves(self, cls: str, provider: str) -> bool:
        approved = self.approvals.get(cls)
        if approved is None:
            return cls != SECRET and self.unlisted == "allow"
        return ANY_PROVIDER in approved or provider in approved

    def approves_all(self, classes: Iterable[str], provider: str) -> bool:
        return all(self.approves(cls, provider) for cls in classes)


RULES_OFF = SensitivityRules(enabled=False)
#: The rules without a [sensitivity] section: secrets never leave; personal and financial data
#: go anywhere, but are detected and named in the reasons.
SAFE_DEFAULTS = SensitivityRules(
    approvals={PII: frozenset({ANY_PROVIDER}), FINANCIAL: frozenset({ANY_PROVIDER})},
    unlisted="allow",
)


@dataclass(frozen=True, slots=True)
class Screened:
    """The candidates that may receive the request, in their original order, and why."""

    candidates: tuple[str, ...]
    reasons: tuple[str, ...] = ()


def request_classes(request: RouteRequest, rules: SensitivityRules) -> frozenset[str]:
    """The classes `request` carries: detected in its text, plus the one its hint names."""
    if not rules.enabled:
        return frozenset()
    classes: set[str] = set()
    if rules.detect:
        text = request.prompt_text()
        tools = tool_text(request)
        classes |= detect_sensitive(f"{text}\n{tools}" if tools else text).classes
    hint = request.hints.sensitivity
    if hint is not None and hint.strip():
        classes.add(hint.strip().lower())
    return frozenset(classes)


def screen(
    candidates: Iterable[str],
    classes: frozenset[str],
    providers: Mapping[str, str],
    rules: SensitivityRules,
) -> Screened:
    """Keep the candidates whose provider is approved for every class in `classes`.

    `providers` maps a model name to its provider; a model it does not know is
    never approved. Raises `PolicyError` (`policy_denied`) when none is kept.
    """
    names = list(candidates)
    if not rules.enabled or not classes:
        return Screened(tuple(names))
    kept: list[str] = []
    dropped: list[str] = []
    for name in names:
        provider = providers.get(name)
        if provider is not None and rules.approves_all(classes, provider):
            kept.append(name)
        else:
            dropped.append(f"{name} ({provider or 'unknown provider'})")
    label = ",".join(sorted(classes))
    if not kept:
        raise PolicyError(
            f"request carries sensitive data ({label}) and no candidate's provider is "
            f"approved for it: {', '.join(dropped) or 'no candidates'}",
            ErrorType.POLICY_DENIED,
        )
    reasons = [f"sensitive={label}"]
    if dropped:
        reasons.append(f"sensitivity dropped {', '.join(dropped)}")
    return Screened(tuple(kept), tuple(reasons))


def approved_only(
    candidates: Iterable[str],
    classes: frozenset[str],
    providers: Mapping[str, str],
    rules: SensitivityRules,
) -> list[str]:
    """The approved candidates, possibly none (no error): for optional lists (arms, cascades)."""
    if not rules.enabled or not classes:
        return list(candidates)
    return [
        name
        for name in candidates
        if name in providers and rules.approves_all(classes, providers[name])
    ]
