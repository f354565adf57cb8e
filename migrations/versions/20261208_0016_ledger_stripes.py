"""ledger hot accounts striped: each order's stripe

``service_requests.ledger_stripe``: the stripe of the ledger's hot accounts (gateway clearing, platform
revenue, refunds payable, dispute losses) every posting about the order uses (domain/money/ledger.py).
Existing orders get 0, the plain account they were posted to; new ones draw a stripe when created.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('service_requests', sa.Column('ledger_stripe', sa.SmallInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('service_requests', 'ledger_stripe')
