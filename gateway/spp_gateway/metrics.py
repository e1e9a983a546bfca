"""Gateway metrics: the kit's registry, labelled by upstream service.

The proxy records its own requests (the route label is the service name, a
handful of values), so the hot path needs no second middleware walking a
router; the gateway's own endpoints use the kit's middleware.
"""

from __future__ import annotations

import time
from typing import Any

from spp_shared.kit.metrics import Metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class GatewayMetrics(Metrics):
    def __init__(self, service: str = "gateway") -> None:
        super().__init__(service)
        # (method, route, status) -> (counter child, histogram child): label
        # resolution takes a lock and a tuple hash; do it once per combination.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        if method not in _METHODS:  # clients choose methods; bound the label set
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
