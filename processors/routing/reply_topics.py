"""Which topics a tenant may name as `reply_to`: its own, never another's or tierline's.

A request may ask for its answer on a topic of its own (`reply_to`), so each tenant
can read only its replies (with Kafka ACLs: deploy/kafka/acls.md). The rule, in order:

* the shared response topic is always allowed;
* never a name starting with `__` (Kafka's and faust's internal topics) or with the
  tierline prefix (the request, tier, cost and DLQ topics);
* otherwise the name must match one of the tenant's patterns: shell-style globs in
  which `{tenant}` stands for the tenant's name, taken literally (a tenant called
  "a*" gets no wildcard). The default, `{tenant}.*`, gives tenant "acme" every topic
  under "acme.". Per-tenant patterns replace the default for that tenant.

Whether the topic exists is the broker's to say; the router asks it before
forwarding (a missing topic is refused, never auto-created).
"""

from __future__ import annotations

import fnmatch
import glob
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tierline.schemas.request import TOPIC_NAME_PATTERN

DEFAULT_PATTERNS: tuple[str, ...] = ("{tenant}.*",)
_LEGAL = re.compile(TOPIC_NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class ReplyTopicRules:
    """The reply topics each tenant may use."""

    prefix: str = "tierline."
    responses: str = "tierline.responses"
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    tenants: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def patterns_for(self, tenant: str) -> tuple[str, ...]:
        return self.tenants.get(tenant, self.patterns)

    def refusal(self, tenant: str, reply_to: str) -> str | None:
        """Why `tenant` may not be answered on `reply_to`; None when it may."""
        if reply_to == self.responses:
            return None
        if not _LEGAL.match(reply_to):
            return f"reply_to {reply_to!r} is not a legal Kafka topic name"
        if reply_to.startswith("__"):
            return f"reply_to {reply_to!r} names an internal topic"
        if self.prefix and reply_to.startswith(self.prefix):
            return f"reply_to {reply_to!r} names one of tierline's own topics"
        literal = glob.escape(tenant)
        for pattern in self.patterns_for(tenant):
            if fnmatch.fnmatchcase(reply_to, pattern.replace("{tenant}", literal)):
                return None
        allowed = ", ".join(self.patterns_for(tenant)).replace("{tenant}", tenant) or "none"
        return f"reply_to {reply_to!r} is not one of tenant {tenant!r}'s reply topics ({allowed})"


def rules_from(
    prefix: str,
    responses: str,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    tenants: Mapping[str, Sequence[str]] | None = None,
) -> ReplyTopicRules:
    return ReplyTopicRules(
        prefix=prefix,
        responses=responses,
        patterns=tuple(patterns),
        tenants={t: tuple(p) for t, p in (tenants or {}).items()},
    )
