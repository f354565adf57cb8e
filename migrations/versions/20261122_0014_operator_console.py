"""operator console: indexes for the sort orders of the request table

The operator's ``serviceRequests(orderBy: ...)`` pages by keyset on ``(sort value, id)``
(domain/orders/service_request.py REQUEST_SORTS). ``created_at`` already had its index (0001); this adds
``(updated_at, id)``, ``(amount_minor, id)`` and ``(status, id)`` so each order is an index scan
that stops after a page instead of a sort of the whole table. The reports (domain/operations/reports.py) add no
index: they reach ledger entries through their account (ix_ledger_entries_account_id_id) and filter
the period there; a date index on the ledger waits until a report is measured to need one.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_service_requests_updated_at_id': ['updated_at', 'id'],
    'ix_service_requests_amount_minor_id': ['amount_minor', 'id'],
    'ix_service_requests_status_id': ['status', 'id'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, 'service_requests', columns, if_not_exists=True)


def downgrade() -> None:
    # IF EXISTS: a database migrated while this revision was an empty placeholder has none of them
    # (0015 creates them there).
    for name in INDEXES:
        op.drop_index(name, table_name='service_requests', if_exists=True)
