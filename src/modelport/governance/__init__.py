"""Layer 3: governance — validation gates, promotion policies, approvals and release rules.

The public entry points, for the CLI and the API layer: :func:`identify` (API key → principal),
:func:`validate` (gates → stored report), :func:`promote` / :func:`approve` / :func:`reject` /
:func:`cancel` / :func:`override` (the promotion workflow), and :func:`start_release` /
:func:`shadow_release` / :func:`promote_release` / :func:`rollback_release` / :func:`stop_release` /
:func:`release_status` (canary and shadow releases).
"""

from modelport.governance.access import identify
from modelport.governance.promotion import PromotionResult, approve, cancel, override, pending_requests, promote, reject
from modelport.governance.releases import (
    ReleaseStatus,
    VersionTraffic,
    promote_release,
    release_status,
    rollback_release,
    shadow_release,
    start_release,
    stop_release,
)
from modelport.governance.validation import EXPORTED_FROM_TAG, require_report, validate

__all__ = [
    "EXPORTED_FROM_TAG",
    "PromotionResult",
    "ReleaseStatus",
    "VersionTraffic",
    "approve",
    "cancel",
    "identify",
    "override",
    "pending_requests",
    "promote",
    "promote_release",
    "reject",
    "release_status",
    "require_report",
    "rollback_release",
    "shadow_release",
    "start_release",
    "stop_release",
    "validate",
]
