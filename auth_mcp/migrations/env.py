"""Alembic environment: migrations run only through auth_mcp.storage.migrate, on its connection."""

from alembic import context

from auth_mcp.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `auth-mcp db upgrade`, which supplies the database connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables where needed.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
