"""Governance: users and API keys, policies, validation reports, promotion requests, releases.

See :mod:`modelport.registry.users`, :mod:`~modelport.registry.policies`,
:mod:`~modelport.registry.validations`, :mod:`~modelport.registry.promotions` and
:mod:`~modelport.registry.releases`.

Revision ID: 0003_governance
Revises: 0002_batch_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_governance"
down_revision: str | None = "0002_batch_runs"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_NAME = 128
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the governance tables."""
    op.create_table(
        "users",
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(_NAME), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], name="fk_api_keys_user_name_users"),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_user_name", "api_keys", ["user_name"])
    op.create_table(
        "policies",
        sa.Column("scope", sa.String(_NAME), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("protected_since", sa.JSON(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_policies"),
    )
    op.create_table(
        "validation_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(_NAME), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("against_version", sa.Integer(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_validation_reports"),
    )
    op.create_index("ix_validation_reports_model_version", "validation_reports", ["model", "version"])
    _create_promotions()
    _create_releases()


def _create_promotions() -> None:
    op.create_table(
        "promotion_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(_NAME), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(_NAME), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", _WHEN, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approver_role", sa.String(32), nullable=False),
        sa.Column("required_gates", sa.JSON(), nullable=False),
        sa.Column("override_by", sa.String(255), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("closed_at", _WHEN, nullable=True),
        sa.Column("closed_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_requests"),
    )
    op.create_index("ix_promotion_requests_status", "promotion_requests", ["status"])
    op.create_index("ix_promotion_requests_model_alias", "promotion_requests", ["model", "alias"])
    op.create_table(
        "promotion_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["promotion_requests.id"], name="fk_promotion_decisions_request_id_promotion_requests"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_decisions"),
    )
    op.create_index("ix_promotion_decisions_request_id", "promotion_decisions", ["request_id"])


def _create_releases() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(_NAME), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("started_by", sa.String(255), nullable=False),
        sa.Column("ended_at", _WHEN, nullable=True),
        sa.Column("ended_by", sa.String(255), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
    )
    op.create_index("ix_releases_model", "releases", ["model"])
    op.create_index("ix_releases_status", "releases", ["status"])
    op.create_table(
        "release_traffic",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("reporter", sa.String(255), nullable=False),
        sa.Column("summaries", sa.JSON(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name="fk_release_traffic_release_id_releases"),
        sa.PrimaryKeyConstraint("release_id", "reporter", name="pk_release_traffic"),
    )


def downgrade() -> None:
    """Drop the governance tables."""
    op.drop_table("release_traffic")
    op.drop_index("ix_releases_status", table_name="releases")
    op.drop_index("ix_releases_model", table_name="releases")
    op.drop_table("releases")
    op.drop_index("ix_promotion_decisions_request_id", table_name="promotion_decisions")
    op.drop_table("promotion_decisions")
    op.drop_index("ix_promotion_requests_model_alias", table_name="promotion_requests")
    op.drop_index("ix_promotion_requests_status", table_name="promotion_requests")
    op.drop_table("promotion_requests")
    op.drop_index("ix_validation_reports_model_version", table_name="validation_reports")
    op.drop_table("validation_reports")
    op.drop_table("policies")
    op.drop_index("ix_api_keys_user_name", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")
