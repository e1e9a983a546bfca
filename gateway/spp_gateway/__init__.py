"""Services Publics+ gateway: one public entry point in front of the services."""

from spp_gateway.app import create_app
from spp_gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
