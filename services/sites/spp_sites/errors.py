"""Domain errors of the sites service."""

from __future__ import annotations

from spp_shared.kit.errors import Conflict, NotFound, ValidationProblem


class SiteNotFound(NotFound):
    type_ = "site-not-found"
    title = "Site not found"


class NetworkNotFound(NotFound):
    type_ = "network-not-found"
    title = "Network not found"


class DuplicateSite(Conflict):
    type_ = "duplicate-site"
    title = "A site with this code already exists"


class DuplicateNetwork(Conflict):
    type_ = "duplicate-network"
    title = "A network with this code already exists"


class UnknownNetwork(ValidationProblem):
    type_ = "unknown-network"
    title = "Unknown network"


class InvalidGeography(ValidationProblem):
    type_ = "invalid-geography"
    title = "Invalid geography"


class SiteStatusConflict(Conflict):
    type_ = "site-status-conflict"
    title = "The site's status does not allow this"
