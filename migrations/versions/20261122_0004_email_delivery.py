"""email delivery log, HTML bodies, notification preferences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('emails', sa.Column('user_id', sa.BigInteger(), nullable=True))
    op.add_column('emails', sa.Column('body_html', sa.Text(), server_default='', nullable=False))
    op.add_column('emails', sa.Column('list_unsubscribe', sa.String(length=1000), nullable=True))
    op.add_column('emails', sa.Column('status', sa.String(length=16), server_default='queued', nullable=False))
    op.add_column('emails', sa.Column('message_id', sa.String(length=300), nullable=True))
    op.add_column('emails', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                                      nullable=False))
    # Emails sent before this revision.
    op.execute("UPDATE emails SET status = 'sent' WHERE sent_at IS NOT NULL")
    op.create_foreign_key(op.f('fk_emails_user_id_users'), 'emails', 'users', ['user_id'], ['id'], ondelete='SET NULL')
    op.create_check_constraint(
        op.f('ck_emails_status'), 'emails', "status IN ('queued', 'sent', 'failed', 'dead', 'suppressed')"
    )
    op.create_index('ix_emails_status_id', 'emails', ['status', 'id'], unique=False)

    op.create_table('email_deliveries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('email_id', sa.BigInteger(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('smtp_message_id', sa.String(length=300), nullable=True),
    sa.Column('smtp_response', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("outcome IN ('sent', 'failed', 'dead_lettered', 'suppressed')",
                       name=op.f('ck_email_deliveries_outcome')),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_email_deliveries_email_id_emails'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_deliveries')),
    sa.UniqueConstraint('email_id', 'attempt', name=op.f('uq_email_deliveries_email_id_attempt'))
    )

    op.create_table('notification_preferences',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_preferences_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'kind', name=op.f('pk_notification_preferences'))
    )

    op.create_table('email_suppressions',
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("source IN ('one_click', 'account')", name=op.f('ck_email_suppressions_source')),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_email_suppressions'))
    )


def downgrade() -> None:
    op.drop_table('email_suppressions')
    op.drop_table('notification_preferences')
    op.drop_table('email_deliveries')
    op.drop_index('ix_emails_status_id', table_name='emails')
    op.drop_constraint(op.f('ck_emails_status'), 'emails', type_='check')
    op.drop_constraint(op.f('fk_emails_user_id_users'), 'emails', type_='foreignkey')
    for column in ('updated_at', 'message_id', 'status', 'list_unsubscribe', 'body_html', 'user_id'):
        op.drop_column('emails', column)
