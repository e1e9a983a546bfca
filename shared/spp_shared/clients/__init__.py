"""Typed clients other services use to call a service over HTTP (never its database)."""
