"""Layer 2: the registry — versions, aliases, audit log, artifact store, migrations."""
