"""The database schema (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Invariants the tables encode:
- No token, code, consent request id or state is stored in the clear: `*_hash` columns hold
  their SHA-256 (tokens.token_hash). GitHub tokens and client secrets are stored only
  encrypted (`*_enc`, crypto.Keyring).
- Every MCP token and code belongs to exactly one grant; a grant belongs to one person (GitHub's
  numeric user id, never the renamable login) and one client, and holds that person's GitHub
  token. Deleting a grant deletes everything issued from it (ON DELETE CASCADE): revocation is
  a delete, so nothing revoked lingers in the database.
- Timestamps are integer Unix seconds.
- The audit trail (`audit_events`) stands alone, without foreign keys: it outlives the grants
  and clients it names, until its retention period ends. It never holds a secret, and holds
  tool arguments only when the operator opted in.

Changes to these tables go through an Alembic migration in `auth_mcp/migrations/versions`;
tests/storage/test_migrations.py fails when the two disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_HASH = String(64)
# A client id is a UUID for registered clients and an HTTPS URL for metadata-document clients.
_CLIENT_ID = String(2048)

clients = Table(
    "clients",
    metadata,
    Column("client_id", _CLIENT_ID, primary_key=True),
    # RFC 7591 §3.2.1 client information, without the secret.
    Column("info", JSON, nullable=False),
    Column("client_secret_enc", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False, index=True),
    # First time an authorization completed for this client; unused registrations expire.
    Column("used_at", BigInteger, nullable=True),
)

pending_authorizations = Table(
    "pending_authorizations",
    metadata,
    # The id in the consent page URL; lives from /authorize to the GitHub callback.
    Column("request_hash", _HASH, primary_key=True),
    Column("client_id", _CLIENT_ID, nullable=False, index=True),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_provided_explicitly", Boolean, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("client_state", Text, nullable=True),
    Column("scopes", Text, nullable=False),
    Column("resource", Text, nullable=False),
    # Set only once the person approved: our state toward GitHub and our PKCE verifier toward it.
    Column("upstream_state_hash", _HASH, nullable=True, unique=True),
    Column("github_verifier_enc", Text, nullable=True),
    # Set when GitHub's callback used the state; the row is kept until expiry to spot replays.
    Column("consumed_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

grants = Table(
    "grants",
    metadata,
    Column("grant_id", _HASH, primary_key=True),
    Column("client_id", _CLIENT_ID, nullable=False, index=True),
    Column("client_name", Text, nullable=True),
    Column("github_user_id", BigInteger, nullable=False, index=True),
    Column("github_login", String(255), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("github_token_enc", Text, nullable=False),
    Column("github_token_expires_at", BigInteger, nullable=True),
    Column("github_refresh_token_enc", Text, nullable=True),
    Column("github_refresh_expires_at", BigInteger, nullable=True),
    Column("github_scopes", Text, nullable=False),
    # A lease that serialises GitHub token refreshes across processes (github/person.py).
    Column("refresh_lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # When the grant is useless (its last refresh token or unexchanged code expired).
    Column("expires_at", BigInteger, nullable=False, index=True),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", _HASH, primary_key=True),
    Column("grant_id", _HASH, ForeignKey("grants.grant_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("client_id", _CLIENT_ID, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_provided_explicitly", Boolean, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    # Kept after use so that a replay is recognised and revokes the grant (RFC 6749 §4.1.2).
    Column("used_at", BigInteger, nullable=True),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", _HASH, primary_key=True),
    Column("grant_id", _HASH, ForeignKey("grants.grant_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("client_id", _CLIENT_ID, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", _HASH, primary_key=True),
    Column("grant_id", _HASH, ForeignKey("grants.grant_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("client_id", _CLIENT_ID, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    # Kept after rotation so that a replay is recognised and revokes the grant (OAuth 2.1 §4.3.1).
    Column("rotated_at", BigInteger, nullable=True),
)

used_assertions = Table(
    "used_assertions",
    metadata,
    # SHA-256 of (client_id, jti) of a client assertion (RFC 7523 §3 item 7: each jti once).
    Column("key_hash", _HASH, primary_key=True),
    # When the assertion (plus clock-skew leeway) expires; the row may go after that.
    Column("expires_at", BigInteger, nullable=False, index=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    # SQLite autoincrements only an INTEGER primary key (its rowid).
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("github_user_id", BigInteger, nullable=False, index=True),
    Column("github_login", String(255), nullable=False),
    Column("client_id", _CLIENT_ID, nullable=False),
    Column("client_name", Text, nullable=True),
    Column("upstream", String(255), nullable=False),
    Column("tool", String(255), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("detail", Text, nullable=True),
    # JSON of the arguments, only with AUTH_MCP_AUDIT_ARGUMENTS (capped); never by default.
    Column("arguments", Text, nullable=True),
)

