"""in-app notifications feed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

KINDS = "('service_request_status', 'booking_status', 'chat_message', 'payout', 'dispute', 'escalation')"
SUBJECT_TYPES = "('ServiceRequest', 'Booking', 'Payout', 'Dispute', 'Escalation', 'Conversation')"


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=True),
    sa.Column('subject_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f"kind IN {KINDS}", name=op.f('ck_notifications_kind')),
    sa.CheckConstraint(
        f"(subject_type IS NULL AND subject_id IS NULL) OR (subject_type IN {SUBJECT_TYPES} AND subject_id IS NOT NULL)",
        name=op.f('ck_notifications_subject'),
    ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index('ix_notifications_user_id_id', 'notifications', ['user_id', 'id'], unique=False)
    op.create_index('ix_notifications_unread', 'notifications', ['user_id', 'id'], unique=False,
                    postgresql_where=sa.text('read_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_notifications_unread', table_name='notifications', postgresql_where=sa.text('read_at IS NULL'))
    op.drop_index('ix_notifications_user_id_id', table_name='notifications')
    op.drop_table('notifications')
