"""contracts, versions and acceptances

``contracts``: one row per version of the contract of a catalogue order (``service_request_id``) or of
a booking's visit (``booking_id``), exactly one of the two; the rendered body, the terms it was
rendered from (JSONB), the SHA-256 of the body, and ``superseded_at`` once a newer version replaced
it (at most one current version per subject: partial unique indexes). ``contract_acceptances``: who
accepted which version as which party (customer | provider), when, from which IP and user agent;
once per (contract, party). Matches models/orders/contract.py.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contracts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('service_request_id', sa.BigInteger(), nullable=True),
    sa.Column('booking_id', sa.BigInteger(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('terms', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('(service_request_id IS NULL) <> (booking_id IS NULL)', name=op.f('ck_contracts_one_subject')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_contracts_version_positive')),
    sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_contracts_sha256_hex')),
    sa.ForeignKeyConstraint(['service_request_id'], ['service_requests.id'],
                            name=op.f('fk_contracts_service_request_id_service_requests')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_contracts_booking_id_bookings')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_contracts_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts')),
    sa.UniqueConstraint('service_request_id', 'version', name=op.f('uq_contracts_service_request_id_version')),
    sa.UniqueConstraint('booking_id', 'version', name=op.f('uq_contracts_booking_id_version')),
    )
    op.create_index(op.f('ix_contracts_provider_id'), 'contracts', ['provider_id'], unique=False)
    op.create_index('uq_contracts_current_request', 'contracts', ['service_request_id'], unique=True,
                    postgresql_where=sa.text('superseded_at IS NULL AND service_request_id IS NOT NULL'))
    op.create_index('uq_contracts_current_booking', 'contracts', ['booking_id'], unique=True,
                    postgresql_where=sa.text('superseded_at IS NULL AND booking_id IS NOT NULL'))
    op.create_table('contract_acceptances',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('party', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.CheckConstraint("party IN ('customer', 'provider')", name=op.f('ck_contract_acceptances_party')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'],
                            name=op.f('fk_contract_acceptances_contract_id_contracts')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_contract_acceptances_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_acceptances')),
    sa.UniqueConstraint('contract_id', 'party', name=op.f('uq_contract_acceptances_contract_id_party')),
    )
    op.create_index(op.f('ix_contract_acceptances_contract_id'), 'contract_acceptances', ['contract_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_contract_acceptances_contract_id'), table_name='contract_acceptances')
    op.drop_table('contract_acceptances')
    op.drop_index('uq_contracts_current_booking', table_name='contracts')
    op.drop_index('uq_contracts_current_request', table_name='contracts')
    op.drop_index(op.f('ix_contracts_provider_id'), table_name='contracts')
    op.drop_table('contracts')
