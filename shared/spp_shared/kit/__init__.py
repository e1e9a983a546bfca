"""The small kit every SP+ service uses: settings, database, errors,
pagination, logging, health, metrics, identity, service clients."""
