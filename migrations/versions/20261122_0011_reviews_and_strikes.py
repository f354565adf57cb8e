"""blind reviews, rating aggregates, strikes and suspensions

Adds ``reviews`` (one per subject — an order or a visit — per side; blind until both sides reviewed
or the review window closed), ``provider_strikes`` (admins' strikes), and on ``providers`` the
per-star counts of published customer reviews (rating_1..rating_5), strike_count, the automatic
flag (flagged_at, flag_reason) and the suspension's time and reason. Existing ``bookings.review_rating``
values are copied into ``reviews`` as published customer reviews and the aggregates recomputed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for n in range(1, 6):
        op.add_column('providers', sa.Column(f'rating_{n}', sa.Integer(), server_default='0', nullable=False))
    op.add_column('providers', sa.Column('strike_count', sa.Integer(), server_default='0', nullable=False))
    op.add_column('providers', sa.Column('flagged_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('providers', sa.Column('flag_reason', sa.String(length=300), nullable=True))
    op.add_column('providers', sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('providers', sa.Column('suspension_reason', sa.String(length=2000), nullable=True))
    op.create_index('ix_providers_flagged', 'providers', ['flagged_at', 'id'],
                    postgresql_where=sa.text('flagged_at IS NOT NULL'))

    op.create_table(
        'reviews',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('service_request_id', sa.BigInteger(), nullable=True),
        sa.Column('booking_id', sa.BigInteger(), nullable=True),
        sa.Column('author_role', sa.Text(), nullable=False),
        sa.Column('author_user_id', sa.BigInteger(), nullable=True),
        sa.Column('provider_id', sa.BigInteger(), nullable=False),
        sa.Column('customer_user_id', sa.BigInteger(), nullable=True),
        sa.Column('rating', sa.SmallInteger(), nullable=False),
        sa.Column('text', sa.Text(), server_default='', nullable=False),
        sa.Column('window_closes_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_reviews_rating_range')),
        sa.CheckConstraint("author_role IN ('customer', 'provider')", name=op.f('ck_reviews_author_role')),
        sa.CheckConstraint('(service_request_id IS NULL) <> (booking_id IS NULL)', name=op.f('ck_reviews_one_subject')),
        sa.ForeignKeyConstraint(['service_request_id'], ['service_requests.id'],
                                name=op.f('fk_reviews_service_request_id_service_requests')),
        sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_reviews_booking_id_bookings')),
        sa.ForeignKeyConstraint(['author_user_id'], ['users.id'], name=op.f('fk_reviews_author_user_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_reviews_provider_id_providers')),
        sa.ForeignKeyConstraint(['customer_user_id'], ['users.id'], name=op.f('fk_reviews_customer_user_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews')),
        sa.UniqueConstraint('service_request_id', 'author_role', name=op.f('uq_reviews_service_request_id_author_role')),
        sa.UniqueConstraint('booking_id', 'author_role', name=op.f('uq_reviews_booking_id_author_role')),
    )
    op.create_index('ix_reviews_provider_published', 'reviews',
                    ['provider_id', sa.text('published_at DESC'), sa.text('id DESC')],
                    postgresql_where=sa.text("published_at IS NOT NULL AND author_role = 'customer'"))
    op.create_index('ix_reviews_unpublished_due', 'reviews', ['window_closes_at'],
                    postgresql_where=sa.text('published_at IS NULL'))
    op.create_index('ix_reviews_author', 'reviews', ['author_user_id', 'id'])
    op.create_index('ix_reviews_customer', 'reviews', ['customer_user_id', 'id'])

    op.create_table(
        'provider_strikes',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('provider_id', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('service_request_id', sa.BigInteger(), nullable=True),
        sa.Column('booking_id', sa.BigInteger(), nullable=True),
        sa.Column('dispute_id', sa.BigInteger(), nullable=True),
        sa.Column('created_by_user_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint('num_nonnulls(service_request_id, booking_id, dispute_id) <= 1',
                           name=op.f('ck_provider_strikes_one_reference')),
        sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_strikes_provider_id_providers')),
        sa.ForeignKeyConstraint(['service_request_id'], ['service_requests.id'],
                                name=op.f('fk_provider_strikes_service_request_id_service_requests')),
        sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_provider_strikes_booking_id_bookings')),
        sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_provider_strikes_dispute_id_disputes')),
        sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'],
                                name=op.f('fk_provider_strikes_created_by_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_strikes')),
    )
    op.create_index(op.f('ix_provider_strikes_provider_id'), 'provider_strikes', ['provider_id'])

    # Reviews made before this revision (bookings.review_rating): published customer reviews, and the
    # aggregates recomputed from them (the one model of reviews from now on).
    op.execute("""
        INSERT INTO reviews (booking_id, author_role, author_user_id, provider_id, customer_user_id, rating, text,
                             window_closes_at, created_at, published_at)
        SELECT b.id, 'customer', b.customer_user_id, b.provider_id, b.customer_user_id, b.review_rating,
               coalesce(b.review_comment, ''), coalesce(b.completed_at, b.updated_at) + interval '14 days',
               b.updated_at, b.updated_at
        FROM bookings b WHERE b.review_rating BETWEEN 1 AND 5
    """)
    op.execute("""
        UPDATE providers p SET rating_1 = a.r1, rating_2 = a.r2, rating_3 = a.r3, rating_4 = a.r4, rating_5 = a.r5,
               review_count = a.n, rating = round(a.total::numeric / a.n, 2)
        FROM (SELECT provider_id, count(*) AS n, sum(rating) AS total,
                     count(*) FILTER (WHERE rating = 1) AS r1, count(*) FILTER (WHERE rating = 2) AS r2,
                     count(*) FILTER (WHERE rating = 3) AS r3, count(*) FILTER (WHERE rating = 4) AS r4,
                     count(*) FILTER (WHERE rating = 5) AS r5
              FROM reviews WHERE author_role = 'customer' AND published_at IS NOT NULL GROUP BY provider_id) a
        WHERE p.id = a.provider_id
    """)


def downgrade() -> None:
    op.drop_index(op.f('ix_provider_strikes_provider_id'), table_name='provider_strikes')
    op.drop_table('provider_strikes')
    op.drop_index('ix_reviews_customer', table_name='reviews')
    op.drop_index('ix_reviews_author', table_name='reviews')
    op.drop_index('ix_reviews_unpublished_due', table_name='reviews')
    op.drop_index('ix_reviews_provider_published', table_name='reviews')
    op.drop_table('reviews')
    op.drop_index('ix_providers_flagged', table_name='providers')
    for column in ('suspension_reason', 'suspended_at', 'flag_reason', 'flagged_at', 'strike_count',
                   'rating_5', 'rating_4', 'rating_3', 'rating_2', 'rating_1'):
        op.drop_column('providers', column)
