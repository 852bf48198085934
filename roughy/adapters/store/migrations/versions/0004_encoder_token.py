"""renders.encoder_token: the SHA-256 of the token a render's encoder pods authenticate with

On Kubernetes the encoder fetches its presigned URLs and reports progress through the API with
a per-render token (roughy.core.tokens); the operator stores its digest here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('renders') as batch:
        batch.add_column(sa.Column('encoder_token', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('renders') as batch:
        batch.drop_column('encoder_token')
