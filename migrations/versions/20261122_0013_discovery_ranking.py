"""provider ranking statistics for discovery

providers.accepts_urgent (the provider takes urgent jobs; the ``urgent`` search filter), and the
ranking statistics kept by ``odim discovery refresh-stats`` / the scheduler (domain/providers/discovery.py
refresh_stats): completed_jobs, cancelled_jobs (provider-caused), median_response_seconds (null:
never answered an offer) and stats_updated_at (when a refresh last changed them).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('providers', sa.Column('accepts_urgent', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('providers', sa.Column('completed_jobs', sa.Integer(), server_default='0', nullable=False))
    op.add_column('providers', sa.Column('cancelled_jobs', sa.Integer(), server_default='0', nullable=False))
    op.add_column('providers', sa.Column('median_response_seconds', sa.Integer(), nullable=True))
    op.add_column('providers', sa.Column('stats_updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('providers', 'stats_updated_at')
    op.drop_column('providers', 'median_response_seconds')
    op.drop_column('providers', 'cancelled_jobs')
    op.drop_column('providers', 'completed_jobs')
    op.drop_column('providers', 'accepts_urgent')
