"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:09:48.225454
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_clients()
    _create_grants()
    _create_pending_authorizations()
    _create_access_tokens()
    _create_authorization_codes()
    _create_refresh_tokens()


def _create_clients() -> None:
    op.create_table('clients',
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('info', sa.JSON(), nullable=False),
    sa.Column('client_secret_enc', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('used_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients'))
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clients_created_at'), ['created_at'], unique=False)


def _create_grants() -> None:
    op.create_table('grants',
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('client_name', sa.Text(), nullable=True),
    sa.Column('github_user_id', sa.BigInteger(), nullable=False),
    sa.Column('github_login', sa.String(length=255), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('github_token_enc', sa.Text(), nullable=False),
    sa.Column('github_token_expires_at', sa.BigInteger(), nullable=True),
    sa.Column('github_refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('github_refresh_expires_at', sa.BigInteger(), nullable=True),
    sa.Column('github_scopes', sa.Text(), nullable=False),
    sa.Column('refresh_lease_until', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('grant_id', name=op.f('pk_grants'))
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grants_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_grants_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_grants_github_user_id'), ['github_user_id'], unique=False)


def _create_pending_authorizations() -> None:
    op.create_table('pending_authorizations',
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('redirect_uri_provided_explicitly', sa.Boolean(), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('client_state', sa.Text(), nullable=True),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('upstream_state_hash', sa.String(length=64), nullable=True),
    sa.Column('github_verifier_enc', sa.Text(), nullable=True),
    sa.Column('consumed_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('request_hash', name=op.f('pk_pending_authorizations')),
    sa.UniqueConstraint('upstream_state_hash', name=op.f('uq_pending_authorizations_upstream_state_hash'))
    )
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_authorizations_expires_at'), ['expires_at'], unique=False)


def _create_access_tokens() -> None:
    op.create_table('access_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.grant_id'], name=op.f('fk_access_tokens_grant_id_grants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_access_tokens'))
    )
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_tokens_grant_id'), ['grant_id'], unique=False)


def _create_authorization_codes() -> None:
    op.create_table('authorization_codes',
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('redirect_uri_provided_explicitly', sa.Boolean(), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('used_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.grant_id'], name=op.f('fk_authorization_codes_grant_id_grants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_authorization_codes'))
    )
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_grant_id'), ['grant_id'], unique=False)


def _create_refresh_tokens() -> None:
    op.create_table('refresh_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=2048), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('rotated_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.grant_id'], name=op.f('fk_refresh_tokens_grant_id_grants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_refresh_tokens'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_grant_id'), ['grant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_grant_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_expires_at'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_codes_grant_id'))
        batch_op.drop_index(batch_op.f('ix_authorization_codes_expires_at'))

    op.drop_table('authorization_codes')
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_grant_id'))
        batch_op.drop_index(batch_op.f('ix_access_tokens_expires_at'))

    op.drop_table('access_tokens')
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_authorizations_expires_at'))

    op.drop_table('pending_authorizations')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grants_github_user_id'))
        batch_op.drop_index(batch_op.f('ix_grants_expires_at'))
        batch_op.drop_index(batch_op.f('ix_grants_client_id'))

    op.drop_table('grants')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_created_at'))

    op.drop_table('clients')
