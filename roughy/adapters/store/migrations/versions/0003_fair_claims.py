"""renders by state and account: the fair claim's index

The claim picks the account with the fewest running renders among those with pending ones;
both aggregations read (state, account_id) and the oldest seq of each account.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:40:00
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_renders_state_account', 'renders', ['state', 'account_id', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_renders_state_account', table_name='renders')
