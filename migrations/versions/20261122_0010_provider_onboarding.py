"""provider applications, documents, service areas

provider_applications (one open application per account: partial unique index; the admin queue
index on status, queued_at, id), application_documents (the uploaded files' metadata and sha256;
the bytes live in gateways/storage.py), and the service area of providers (service_radius_km,
service_area polygon). Phone, address and original file names are encrypted at rest (text columns).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""
import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OPEN = "status IN ('draft', 'submitted', 'more_documents_requested')"


def _geography(kind: str, nullable: bool = True):
    return geoalchemy2.types.Geography(geometry_type=kind, srid=4326, dimension=2, spatial_index=False,
                                       from_text='ST_GeogFromText', name='geography', nullable=nullable)


def upgrade() -> None:
    op.add_column('providers', sa.Column('service_radius_km', sa.Numeric(6, 2), nullable=True))
    op.add_column('providers', sa.Column('service_area', _geography('POLYGON'), nullable=True))

    op.create_table('provider_applications',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), server_default='draft', nullable=False),
    sa.Column('business_name', sa.String(length=200), nullable=True),
    sa.Column('registration_number', sa.String(length=64), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('city', sa.String(length=120), nullable=True),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('categories', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False),
    sa.Column('service_point', _geography('POINT'), nullable=True),
    sa.Column('service_radius_km', sa.Numeric(6, 2), nullable=True),
    sa.Column('service_area', _geography('POLYGON'), nullable=True),
    sa.Column('progress', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('requested_document_kinds', postgresql.ARRAY(sa.String(length=40)), server_default='{}',
              nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.BigInteger(), nullable=True),
    sa.Column('provider_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'submitted', 'more_documents_requested', 'approved', 'rejected')",
                       name=op.f('ck_provider_applications_status')),
    sa.CheckConstraint('service_radius_km IS NULL OR (service_radius_km > 0 AND service_radius_km <= 100)',
                       name=op.f('ck_provider_applications_service_radius_km')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_provider_applications_user_id_users'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_provider_applications_decided_by_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'],
                            name=op.f('fk_provider_applications_provider_id_providers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_applications'))
    )
    op.create_index('uq_provider_applications_open_user', 'provider_applications', ['user_id'], unique=True,
                    postgresql_where=sa.text(OPEN))
    op.create_index('ix_provider_applications_status_queued', 'provider_applications',
                    ['status', 'queued_at', 'id'], unique=False)
    op.create_index('ix_provider_applications_user_id', 'provider_applications', ['user_id', 'id'], unique=False)

    op.create_table('application_documents',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('original_filename', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('id_card', 'business_registration', 'certificate')",
                       name=op.f('ck_application_documents_kind')),
    sa.CheckConstraint('size_bytes >= 0', name=op.f('ck_application_documents_size_bytes')),
    sa.ForeignKeyConstraint(['application_id'], ['provider_applications.id'],
                            name=op.f('fk_application_documents_application_id_provider_applications'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_documents')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_application_documents_storage_key'))
    )
    op.create_index('ix_application_documents_application_id', 'application_documents', ['application_id', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_application_documents_application_id', table_name='application_documents')
    op.drop_table('application_documents')
    op.drop_index('ix_provider_applications_user_id', table_name='provider_applications')
    op.drop_index('ix_provider_applications_status_queued', table_name='provider_applications')
    op.drop_index('uq_provider_applications_open_user', table_name='provider_applications')
    op.drop_table('provider_applications')
    op.drop_column('providers', 'service_area')
    op.drop_column('providers', 'service_radius_km')
