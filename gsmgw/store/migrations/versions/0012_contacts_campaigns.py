"""contacts, groups, tags, campaigns and their recipients (issue 21 parts 1-2)

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("number", name="uq_contacts_number"),
    )
    op.create_table(
        "contact_groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_contact_groups_name"),
    )
    op.create_table(
        "contact_group_members",
        sa.Column("group_id", sa.String(32),
                  sa.ForeignKey("contact_groups.id", ondelete="CASCADE",
                                name="fk_contact_group_members_group_id_contact_groups"), primary_key=True),
        sa.Column("contact_id", sa.String(32),
                  sa.ForeignKey("contacts.id", ondelete="CASCADE",
                                name="fk_contact_group_members_contact_id_contacts"), primary_key=True),
    )
    op.create_index("ix_contact_group_members_contact", "contact_group_members", ["contact_id"])
    op.create_table(
        "contact_tags",
        sa.Column("contact_id", sa.String(32),
                  sa.ForeignKey("contacts.id", ondelete="CASCADE", name="fk_contact_tags_contact_id_contacts"),
                  primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_contact_tags_tag", "contact_tags", ["tag"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("target_kind", sa.String(8), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("api_key_id", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("queue_window", sa.Integer(), nullable=False),
        sa.Column("sim", sa.String(64)),
        sa.Column("start_at", sa.DateTime()),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("recipients_total", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_campaigns_state", "campaigns", ["state"])
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.String(32),
                  sa.ForeignKey("campaigns.id", ondelete="CASCADE", name="fk_campaign_recipients_campaign_id_campaigns"),
                  primary_key=True),
        sa.Column("contact_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("message_id", sa.String(32)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_campaign_recipients_next", "campaign_recipients", ["campaign_id", "state", "seq"])
    op.create_index("ix_campaign_recipients_number", "campaign_recipients", ["number"])


def downgrade() -> None:
    op.drop_index("ix_campaign_recipients_number", table_name="campaign_recipients")
    op.drop_index("ix_campaign_recipients_next", table_name="campaign_recipients")
    op.drop_table("campaign_recipients")
    op.drop_index("ix_campaigns_state", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index("ix_contact_tags_tag", table_name="contact_tags")
    op.drop_table("contact_tags")
    op.drop_index("ix_contact_group_members_contact", table_name="contact_group_members")
    op.drop_table("contact_group_members")
    op.drop_table("contact_groups")
    op.drop_table("contacts")
