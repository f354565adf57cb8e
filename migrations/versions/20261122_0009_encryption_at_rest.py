"""personal data encrypted at rest, blind indexes, users.deleted_at

Emails, phones, addresses and payout account numbers become AES-256-GCM ciphertexts
(``v1:<key id>:<base64>``, models/crypto.py) in ``text`` columns; exact lookups by email or phone
go through keyed HMAC-SHA256 blind indexes in ``<column>_bidx`` columns. Existing rows are
encrypted here, in Python, with the same functions the models use (the current key of the
settings the migration runs with); downgrade decrypts them back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.crypto import blind_index, decrypt, encrypt

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BATCH = 1000

# (table, column, type before, blind index kind or None). Frozen here: later model changes must not
# change what this revision does.
COLUMNS = [
    ('users', 'email', sa.String(320), 'email'),
    ('users', 'phone', sa.String(32), 'phone'),
    ('service_requests', 'customer_email', sa.String(320), 'email'),
    ('service_requests', 'customer_phone', sa.String(32), None),
    ('providers', 'phone', sa.String(32), None),
    ('payout_destinations', 'phone', sa.String(32), None),
    ('payout_destinations', 'account_number', sa.String(64), None),
    ('payouts', 'destination', None, None),  # jsonb before
    ('tickets', 'address', sa.Text(), None),
    ('affiliates', 'email', sa.String(320), None),
    ('emails', 'to_address', sa.String(320), 'email'),
]
INDEXED = [(t, c, k) for t, c, _, k in COLUMNS if k]


def _rows(bind, table: str, column: str, extra: str = ''):
    """(id, value[, extra]) of the non-null values of table.column, in batches by id (keyset)."""
    last = 0
    while True:
        rows = bind.execute(sa.text(
            f'SELECT id, {column}{extra} FROM {table} WHERE {column} IS NOT NULL AND id > :last ORDER BY id LIMIT :n'
        ), {'last': last, 'n': BATCH}).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def upgrade() -> None:
    bind = op.get_bind()
    op.drop_index('uq_users_email_lower', table_name='users')
    op.add_column('users', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    for table, column, _, kind in COLUMNS:
        if kind:
            op.add_column(table, sa.Column(f'{column}_bidx', sa.String(length=64), nullable=True))
        if (table, column) == ('payouts', 'destination'):
            op.alter_column(table, column, type_=sa.Text(), postgresql_using='destination::text')
        else:
            op.alter_column(table, column, type_=sa.Text())
    op.alter_column('tickets', 'address', server_default=None)  # a default would be stored in clear

    for table, column, _, kind in COLUMNS:
        aad = f'{table}.{column}'
        extra = ', idempotency_scope' if table == 'service_requests' and column == 'customer_email' else ''
        for rows in _rows(bind, table, column, extra):
            params = []
            for row in rows:
                p = {'id': row[0], 'v': encrypt(row[1], aad)}
                if kind:
                    p['b'] = blind_index(row[1], kind)
                if extra:
                    # A guest's idempotency scope named its address: it names the blind index now.
                    p['s'] = (f"guest:{blind_index(row[1], 'email')}"
                              if row[2] == f'guest:{row[1].lower()}' else row[2])
                params.append(p)
            sets = [f'{column} = :v'] + ([f'{column}_bidx = :b'] if kind else []) + (
                ['idempotency_scope = :s'] if extra else [])
            bind.execute(sa.text(f"UPDATE {table} SET {', '.join(sets)} WHERE id = :id"), params)

    # Suppressions were keyed by the lower-cased address: now by its blind index, address encrypted.
    op.add_column('email_suppressions', sa.Column('address_bidx', sa.String(length=64), nullable=True))
    op.alter_column('email_suppressions', 'address', type_=sa.Text())
    addresses = bind.execute(sa.text('SELECT address FROM email_suppressions')).scalars().all()
    if addresses:
        bind.execute(sa.text('UPDATE email_suppressions SET address = :v, address_bidx = :b WHERE address = :a'), [
            {'a': a, 'v': encrypt(a, 'email_suppressions.address'), 'b': blind_index(a, 'email')} for a in addresses
        ])
    op.drop_constraint('pk_email_suppressions', 'email_suppressions', type_='primary')
    op.alter_column('email_suppressions', 'address', nullable=True)
    op.alter_column('email_suppressions', 'address_bidx', nullable=False)
    op.create_primary_key('pk_email_suppressions', 'email_suppressions', ['address_bidx'])

    op.alter_column('users', 'email_bidx', nullable=False)
    op.alter_column('service_requests', 'customer_email_bidx', nullable=False)
    op.alter_column('emails', 'to_address_bidx', nullable=False)
    op.create_index('uq_users_email_bidx', 'users', ['email_bidx'], unique=True)
    op.create_index(op.f('ix_users_phone_bidx'), 'users', ['phone_bidx'], unique=False)
    op.create_index(op.f('ix_service_requests_customer_email_bidx'), 'service_requests', ['customer_email_bidx'],
                    unique=False)
    op.create_index(op.f('ix_emails_to_address_bidx'), 'emails', ['to_address_bidx'], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index(op.f('ix_emails_to_address_bidx'), table_name='emails')
    op.drop_index(op.f('ix_service_requests_customer_email_bidx'), table_name='service_requests')
    op.drop_index(op.f('ix_users_phone_bidx'), table_name='users')
    op.drop_index('uq_users_email_bidx', table_name='users')

    # Suppressions whose address was erased (account deleted) cannot be keyed by address again: dropped.
    op.drop_constraint('pk_email_suppressions', 'email_suppressions', type_='primary')
    bind.execute(sa.text('DELETE FROM email_suppressions WHERE address IS NULL'))
    rows = bind.execute(sa.text('SELECT address_bidx, address FROM email_suppressions')).all()
    if rows:
        bind.execute(sa.text('UPDATE email_suppressions SET address = :a WHERE address_bidx = :b'), [
            {'b': b, 'a': decrypt(v, 'email_suppressions.address').strip().lower()} for b, v in rows
        ])
    op.drop_column('email_suppressions', 'address_bidx')
    op.alter_column('email_suppressions', 'address', type_=sa.String(320), nullable=False)
    op.create_primary_key('pk_email_suppressions', 'email_suppressions', ['address'])

    for table, column, before, kind in COLUMNS:
        aad = f'{table}.{column}'
        extra = ', idempotency_scope' if table == 'service_requests' and column == 'customer_email' else ''
        for rows in _rows(bind, table, column, extra):
            params = []
            for row in rows:
                plain = decrypt(row[1], aad)
                p = {'id': row[0], 'v': plain}
                if extra:
                    p['s'] = (f'guest:{plain.lower()}' if row[2] == f"guest:{blind_index(plain, 'email')}" else row[2])
                params.append(p)
            sets = [f'{column} = :v'] + (['idempotency_scope = :s'] if extra else [])
            bind.execute(sa.text(f"UPDATE {table} SET {', '.join(sets)} WHERE id = :id"), params)
        if before is None:
            op.alter_column(table, column, type_=postgresql.JSONB(), postgresql_using='destination::jsonb')
        else:
            op.alter_column(table, column, type_=before)
        if kind:
            op.drop_column(table, f'{column}_bidx')
    op.alter_column('tickets', 'address', server_default='')
    op.drop_column('users', 'deleted_at')
    op.create_index('uq_users_email_lower', 'users', [sa.text('lower(email)')], unique=True)
