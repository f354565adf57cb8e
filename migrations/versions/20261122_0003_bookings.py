"""bookings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:05:59.070863
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The exclusion constraint on bookings mixes = on a bigint with && on a range: btree_gist.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    # A service request is the order money moves through: a catalogue purchase or a booking's visits.
    op.add_column('service_requests', sa.Column('kind', sa.String(length=16), server_default='purchase', nullable=False))
    op.create_check_constraint('kind', 'service_requests', "kind IN ('purchase', 'booking')")
    op.add_column('service_requests', sa.Column('urgent_surcharge_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.create_table('appliance_models',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('brand', sa.String(length=80), nullable=False),
    sa.Column('model', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appliance_models'))
    )
    op.create_index('uq_appliance_models_name', 'appliance_models', ['category', sa.literal_column('lower(brand)'), sa.literal_column('lower(model)')], unique=True)
    op.create_table('tickets',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('customer_user_id', sa.BigInteger(), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('service_id', sa.BigInteger(), nullable=True),
    sa.Column('appliance', sa.String(length=120), nullable=False),
    sa.Column('brand', sa.String(length=80), nullable=True),
    sa.Column('model', sa.String(length=120), nullable=True),
    sa.Column('model_unlisted', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('preferred_windows', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('urgent', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('location', geoalchemy2.types.Geography(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeogFromText', name='geography', nullable=False), nullable=False),
    sa.Column('address', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('flagged_reason', sa.Text(), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('open', 'scheduled', 'closed', 'cancelled')", name=op.f('ck_tickets_status')),
    sa.ForeignKeyConstraint(['customer_user_id'], ['users.id'], name=op.f('fk_tickets_customer_user_id_users')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_tickets_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('reference', name=op.f('uq_tickets_reference'))
    )
    op.create_index(op.f('ix_tickets_customer_user_id'), 'tickets', ['customer_user_id'], unique=False)
    op.create_index('ix_tickets_open_created', 'tickets', ['created_at'], unique=False, postgresql_where=sa.text("status = 'open'"))
    op.create_table('availability_exceptions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=True),
    sa.Column('end_minute', sa.Integer(), nullable=True),
    sa.CheckConstraint('(start_minute IS NULL AND end_minute IS NULL) OR (start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute)', name=op.f('ck_availability_exceptions_range_valid')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_availability_exceptions_provider_id_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_exceptions'))
    )
    op.create_index('ix_availability_exceptions_provider_date', 'availability_exceptions', ['provider_id', 'on_date'], unique=False)
    op.create_table('availability_rules',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.CheckConstraint('start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute', name=op.f('ck_availability_rules_range_valid')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_availability_rules_weekday_range')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_availability_rules_provider_id_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_rules'))
    )
    op.create_index(op.f('ix_availability_rules_provider_id'), 'availability_rules', ['provider_id'], unique=False)
    op.create_table('provider_booking_settings',
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('buffer_minutes BETWEEN 0 AND 1440', name=op.f('ck_provider_booking_settings_buffer_range')),
    sa.CheckConstraint('horizon_days BETWEEN 1 AND 366', name=op.f('ck_provider_booking_settings_horizon_range')),
    sa.CheckConstraint('min_notice_minutes >= 0', name=op.f('ck_provider_booking_settings_notice_non_negative')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_booking_settings_provider_id_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', name=op.f('pk_provider_booking_settings'))
    )
    op.create_table('provider_services',
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('service_id', sa.BigInteger(), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.CheckConstraint('slot_minutes BETWEEN 5 AND 1440', name=op.f('ck_provider_services_slot_range')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_services_provider_id_providers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_provider_services_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'service_id', name=op.f('pk_provider_services'))
    )
    op.create_index(op.f('ix_provider_services_service_id'), 'provider_services', ['service_id'], unique=False)
    op.create_table('bookings',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('service_id', sa.BigInteger(), nullable=False),
    sa.Column('tier_id', sa.BigInteger(), nullable=False),
    sa.Column('customer_user_id', sa.BigInteger(), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('service_request_id', sa.BigInteger(), nullable=True),
    sa.Column('parent_booking_id', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('during', postgresql.TSTZRANGE(), sa.Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('hold_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('substitution_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('customer_note', sa.Text(), server_default='', nullable=False),
    sa.Column('review_rating', sa.SmallInteger(), nullable=True),
    sa.Column('review_comment', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    postgresql.ExcludeConstraint((sa.column('provider_id'), '='), (sa.column('during'), '&&'), where=sa.text("status IN ('held', 'paid', 'accepted', 'en_route', 'arrived', 'in_progress')"), using='gist', name='bookings_no_overlap'),
    sa.CheckConstraint("status IN ('held', 'payment_expired', 'paid', 'declined', 'expired', 'accepted', 'en_route', 'arrived', 'in_progress', 'needs_follow_up', 'completed', 'cancelled_by_customer', 'cancelled_by_provider', 'cancelled_by_admin', 'cannot_make_it', 'customer_no_show', 'disputed', 'resolved', 'reviewed')", name=op.f('ck_bookings_status')),
    sa.CheckConstraint('review_rating IS NULL OR review_rating BETWEEN 1 AND 5', name=op.f('ck_bookings_rating_range')),
    sa.CheckConstraint('starts_at < ends_at AND ends_at <= blocked_until', name=op.f('ck_bookings_times_ordered')),
    sa.ForeignKeyConstraint(['customer_user_id'], ['users.id'], name=op.f('fk_bookings_customer_user_id_users')),
    sa.ForeignKeyConstraint(['parent_booking_id'], ['bookings.id'], name=op.f('fk_bookings_parent_booking_id_bookings')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_bookings_provider_id_providers')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_bookings_service_id_services')),
    sa.ForeignKeyConstraint(['service_request_id'], ['service_requests.id'], name=op.f('fk_bookings_service_request_id_service_requests')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_bookings_ticket_id_tickets')),
    sa.ForeignKeyConstraint(['tier_id'], ['service_tiers.id'], name=op.f('fk_bookings_tier_id_service_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('customer_user_id', 'idempotency_key', name=op.f('uq_bookings_customer_user_id_idempotency_key')),
    sa.UniqueConstraint('reference', name=op.f('uq_bookings_reference'))
    )
    op.create_index(op.f('ix_bookings_customer_user_id'), 'bookings', ['customer_user_id'], unique=False)
    op.create_index('ix_bookings_hold_expiry', 'bookings', ['hold_expires_at'], unique=False, postgresql_where=sa.text("status = 'held'"))
    op.create_index('ix_bookings_in_progress_end', 'bookings', ['ends_at'], unique=False, postgresql_where=sa.text("status = 'in_progress'"))
    op.create_index('ix_bookings_provider_during', 'bookings', ['provider_id', 'starts_at'], unique=False)
    op.create_index('ix_bookings_response_due', 'bookings', ['response_due_at'], unique=False, postgresql_where=sa.text("status = 'paid'"))
    op.create_index(op.f('ix_bookings_service_request_id'), 'bookings', ['service_request_id'], unique=False)
    op.create_index(op.f('ix_bookings_ticket_id'), 'bookings', ['ticket_id'], unique=False)
    op.create_table('booking_status_history',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('booking_id', sa.BigInteger(), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_user_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("actor_type IN ('customer', 'provider', 'admin', 'system')", name=op.f('ck_booking_status_history_actor_type')),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_booking_status_history_actor_user_id_users')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_status_history_booking_id_bookings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_status_history'))
    )
    op.create_index(op.f('ix_booking_status_history_booking_id'), 'booking_status_history', ['booking_id'], unique=False)
    op.create_table('escalations',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=False),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('booking_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_user_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("kind IN ('ticket_unassigned', 'substitution_unanswered', 'customer_no_show', 'model_unlisted')", name=op.f('ck_escalations_kind')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_escalations_booking_id_bookings')),
    sa.ForeignKeyConstraint(['resolved_by_user_id'], ['users.id'], name=op.f('fk_escalations_resolved_by_user_id_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_escalations_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations'))
    )
    op.create_index(op.f('ix_escalations_booking_id'), 'escalations', ['booking_id'], unique=False)
    op.create_index(op.f('ix_escalations_ticket_id'), 'escalations', ['ticket_id'], unique=False)
    op.create_index('uq_escalations_open', 'escalations', ['kind', 'subject'], unique=True, postgresql_where=sa.text('resolved_at IS NULL'))
    op.create_table('substitution_offers',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('booking_id', sa.BigInteger(), nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='offered', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('offered', 'accepted', 'lost', 'expired')", name=op.f('ck_substitution_offers_status')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_substitution_offers_booking_id_bookings')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_substitution_offers_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_substitution_offers')),
    sa.UniqueConstraint('booking_id', 'provider_id', name=op.f('uq_substitution_offers_booking_id_provider_id'))
    )
    op.create_index(op.f('ix_substitution_offers_booking_id'), 'substitution_offers', ['booking_id'], unique=False)
    op.create_index(op.f('ix_substitution_offers_provider_id'), 'substitution_offers', ['provider_id'], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(op.f('ix_substitution_offers_provider_id'), table_name='substitution_offers')
    op.drop_index(op.f('ix_substitution_offers_booking_id'), table_name='substitution_offers')
    op.drop_table('substitution_offers')
    op.drop_index('uq_escalations_open', table_name='escalations', postgresql_where=sa.text('resolved_at IS NULL'))
    op.drop_index(op.f('ix_escalations_ticket_id'), table_name='escalations')
    op.drop_index(op.f('ix_escalations_booking_id'), table_name='escalations')
    op.drop_table('escalations')
    op.drop_index(op.f('ix_booking_status_history_booking_id'), table_name='booking_status_history')
    op.drop_table('booking_status_history')
    op.drop_index(op.f('ix_bookings_ticket_id'), table_name='bookings')
    op.drop_index(op.f('ix_bookings_service_request_id'), table_name='bookings')
    op.drop_index('ix_bookings_response_due', table_name='bookings', postgresql_where=sa.text("status = 'paid'"))
    op.drop_index('ix_bookings_provider_during', table_name='bookings')
    op.drop_index('ix_bookings_in_progress_end', table_name='bookings', postgresql_where=sa.text("status = 'in_progress'"))
    op.drop_index('ix_bookings_hold_expiry', table_name='bookings', postgresql_where=sa.text("status = 'held'"))
    op.drop_index(op.f('ix_bookings_customer_user_id'), table_name='bookings')
    op.drop_table('bookings')
    op.drop_index(op.f('ix_provider_services_service_id'), table_name='provider_services')
    op.drop_table('provider_services')
    op.drop_table('provider_booking_settings')
    op.drop_index(op.f('ix_availability_rules_provider_id'), table_name='availability_rules')
    op.drop_table('availability_rules')
    op.drop_index('ix_availability_exceptions_provider_date', table_name='availability_exceptions')
    op.drop_table('availability_exceptions')
    op.drop_index('ix_tickets_open_created', table_name='tickets', postgresql_where=sa.text("status = 'open'"))
    op.drop_index(op.f('ix_tickets_customer_user_id'), table_name='tickets')
    op.drop_table('tickets')
    op.drop_index('uq_appliance_models_name', table_name='appliance_models')
    op.drop_table('appliance_models')
    op.drop_column('service_requests', 'urgent_surcharge_minor')
    op.drop_constraint('ck_service_requests_kind', 'service_requests')
    op.drop_column('service_requests', 'kind')
    # ### end Alembic commands ###
