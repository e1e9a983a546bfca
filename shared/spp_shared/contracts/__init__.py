"""Shared contracts: the value types (``types``) and the public models of each
service (``sites``...). Import from the module that holds a name."""
