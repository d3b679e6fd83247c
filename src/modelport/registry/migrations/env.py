"""Alembic environment of the registry schema.

Migrations run programmatically (see :mod:`modelport.registry.schema`), on a connection that
the caller has already opened, put in a transaction and locked; this script only hands that
connection to Alembic. The version table is ``modelport_alembic_version`` so that a database
shared with an application that uses Alembic itself is never confused.
"""

from __future__ import annotations

from alembic import context

from modelport.registry.schema import VERSION_TABLE
from modelport.registry.tables import metadata

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "The modelport registry migrations run through modelport.registry.schema.upgrade(), "
        "which passes an open connection; the alembic command line is not supported."
    )

context.configure(
    connection=_connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=_connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
