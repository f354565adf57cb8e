"""application documents encrypted at rest

``application_documents.file_key_id``: the key id of settings.encryption_keys the stored file is
sealed under (AES-256-GCM bound to its storage key, models/crypto.py ``encrypt_bytes``). Files
uploaded before this revision were stored in plain: their rows get NULL, they are still served as
they are, and ``odim keys rotate`` seals them under the current key.

Also creates the request table's sort indexes of 0014 where they are missing: a database migrated
while 0014 was an empty placeholder is stamped 0014 without them (``IF NOT EXISTS``: a no-op elsewhere).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


SORT_INDEXES = {
    'ix_service_requests_updated_at_id': ['updated_at', 'id'],
    'ix_service_requests_amount_minor_id': ['amount_minor', 'id'],
    'ix_service_requests_status_id': ['status', 'id'],
}


def upgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, 'service_requests', columns, if_not_exists=True)
    op.add_column('application_documents', sa.Column('file_key_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Sealed files stay sealed on disk or in the bucket: code from before 0015 would serve them as
    # they are stored (ciphertext). Nothing is lost: the keys still open them.
    op.drop_column('application_documents', 'file_key_id')
