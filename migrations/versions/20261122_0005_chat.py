"""conversations for bookings and tickets, read receipts, rate limits

Conversations belong to exactly one service request, booking or ticket; they remember their last
message and last activity (set under the conversation's row lock by every send). Messages point at
the previous message of their conversation (``prev_id``, 0 for the first). ``chat_reads`` holds the
read receipts. The sending rate limit lives in Redis (nothing here).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column('conversations', 'service_request_id', existing_type=sa.BigInteger(), nullable=True)
    op.add_column('conversations', sa.Column('booking_id', sa.BigInteger(), nullable=True))
    op.add_column('conversations', sa.Column('ticket_id', sa.BigInteger(), nullable=True))
    op.add_column('conversations', sa.Column('last_message_id', sa.BigInteger(), nullable=True))
    op.add_column('conversations', sa.Column(
        'last_activity_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.create_foreign_key(op.f('fk_conversations_booking_id_bookings'), 'conversations', 'bookings',
                          ['booking_id'], ['id'])
    op.create_foreign_key(op.f('fk_conversations_ticket_id_tickets'), 'conversations', 'tickets',
                          ['ticket_id'], ['id'])
    op.create_unique_constraint(op.f('uq_conversations_booking_id'), 'conversations', ['booking_id'])
    op.create_unique_constraint(op.f('uq_conversations_ticket_id'), 'conversations', ['ticket_id'])
    op.create_check_constraint(op.f('ck_conversations_subject'), 'conversations',
                               'num_nonnulls(service_request_id, booking_id, ticket_id) = 1')
    op.add_column('chat_messages', sa.Column('prev_id', sa.BigInteger(), server_default='0', nullable=False))
    op.execute(
        "UPDATE chat_messages m SET prev_id = p.prev FROM ("
        " SELECT id, coalesce(lag(id) OVER (PARTITION BY conversation_id ORDER BY id), 0) AS prev FROM chat_messages"
        ") p WHERE p.id = m.id AND p.prev <> 0"
    )
    op.execute(
        "UPDATE conversations c SET last_message_id = l.id, last_activity_at = l.created_at FROM ("
        " SELECT DISTINCT ON (conversation_id) conversation_id, id, created_at FROM chat_messages"
        " ORDER BY conversation_id, id DESC"
        ") l WHERE l.conversation_id = c.id"
    )
    op.execute("UPDATE conversations SET last_activity_at = created_at WHERE last_message_id IS NULL")
    op.create_index('ix_conversations_activity', 'conversations',
                    [sa.text('last_activity_at DESC'), sa.text('id DESC')], unique=False)
    op.create_table('chat_reads',
    sa.Column('conversation_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('last_read_message_id', sa.BigInteger(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                            name=op.f('fk_chat_reads_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_chat_reads_user_id_users')),
    sa.PrimaryKeyConstraint('conversation_id', 'user_id', name=op.f('pk_chat_reads'))
    )
    op.create_index(op.f('ix_chat_reads_user_id'), 'chat_reads', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_chat_reads_user_id'), table_name='chat_reads')
    op.drop_table('chat_reads')
    op.drop_index('ix_conversations_activity', table_name='conversations')
    op.drop_column('chat_messages', 'prev_id')
    # Conversations of bookings and tickets (and their messages) cannot exist before this revision.
    op.execute("DELETE FROM chat_messages WHERE conversation_id IN "
               "(SELECT id FROM conversations WHERE service_request_id IS NULL)")
    op.execute("DELETE FROM conversations WHERE service_request_id IS NULL")
    op.drop_constraint(op.f('ck_conversations_subject'), 'conversations', type_='check')
    op.drop_constraint(op.f('uq_conversations_ticket_id'), 'conversations', type_='unique')
    op.drop_constraint(op.f('uq_conversations_booking_id'), 'conversations', type_='unique')
    op.drop_constraint(op.f('fk_conversations_ticket_id_tickets'), 'conversations', type_='foreignkey')
    op.drop_constraint(op.f('fk_conversations_booking_id_bookings'), 'conversations', type_='foreignkey')
    op.drop_column('conversations', 'last_activity_at')
    op.drop_column('conversations', 'last_message_id')
    op.drop_column('conversations', 'ticket_id')
    op.drop_column('conversations', 'booking_id')
    op.alter_column('conversations', 'service_request_id', existing_type=sa.BigInteger(), nullable=False)
