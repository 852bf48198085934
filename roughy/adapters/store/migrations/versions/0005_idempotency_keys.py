"""idempotency_keys: what each Idempotency-Key of POST /v1/assets and /cuts made; assets.poster:
whether a video asset's poster frame was stored

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 19:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('finished', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', 'key'),
    )
    op.create_index('ix_idempotency_keys_created', 'idempotency_keys', ['created_at'])
    with op.batch_alter_table('assets') as batch:
        batch.add_column(sa.Column('poster', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('assets') as batch:
        batch.drop_column('poster')
    op.drop_index('ix_idempotency_keys_created', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
