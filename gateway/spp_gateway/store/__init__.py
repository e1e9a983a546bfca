"""The gateway's credential store: API keys, agents' role mappings, audit log.

``keys`` holds the key format, ``api_keys`` and ``agents`` the two stores
(hot-path look-ups with their caches, and their administration use cases),
``audit`` the audit log, ``repository`` all their SQL.
"""

from spp_gateway.store.agents import AgentDirectory
from spp_gateway.store.api_keys import ApiKeyStore
from spp_gateway.store.audit import list_events, record, record_request
from spp_gateway.store.errors import StoreUnavailable
from spp_gateway.store.keys import parse_key

__all__ = [
    "AgentDirectory",
    "ApiKeyStore",
    "StoreUnavailable",
    "list_events",
    "parse_key",
    "record",
    "record_request",
]
