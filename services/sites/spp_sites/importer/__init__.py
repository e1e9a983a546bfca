"""Streaming bulk import of sites (CSV, NDJSON, the programme's exports)."""
