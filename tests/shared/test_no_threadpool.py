"""No request hops to a worker thread (ADR 0025).

FastAPI runs a plain ``def`` endpoint or dependency in anyio's thread pool:
a thread hand-off and back on every request that uses it (a conditional GET
dependency written ``def`` cost every site GET one). Every endpoint and
dependency of every app is a coroutine (or an async generator).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from spp_gateway.app import create_app as create_gateway
from spp_shared.kit.permissions import api_routes
from spp_sites.app import create_app as create_sites


def _fastapi(app: Any) -> FastAPI:
    """The FastAPI app inside the gateway's ASGI wrappers (its proxy's local app)."""
    todo, seen = [app], set()
    while todo:
        obj = todo.pop(0)
        if isinstance(obj, FastAPI):
            return obj
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        names = [*getattr(obj, "__dict__", {}), *getattr(type(obj), "__slots__", ())]
        todo.extend(v for n in names if callable(v := getattr(obj, n, None)))
    raise AssertionError(f"no FastAPI app inside {app!r}")


def _sync_calls(dependant: Dependant) -> Iterator[str]:
    call = dependant.call
    if call is not None and not (
        inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    ):
        yield f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', call)}"
    for sub in dependant.dependencies:
        yield from _sync_calls(sub)


def _apps() -> list[tuple[str, Callable[[], Any]]]:
    from spp_feedback.app import create_app as create_feedback
    from spp_indicators.app import create_app as create_indicators
    from spp_labelling.app import create_app as create_labelling

    return [
        ("sites", create_sites),
        ("feedback", create_feedback),
        ("indicators", create_indicators),
        ("labelling", create_labelling),
        ("gateway", create_gateway),
    ]


@pytest.mark.parametrize(("name", "factory"), _apps(), ids=[n for n, _ in _apps()])
def test_no_endpoint_or_dependency_runs_in_the_thread_pool(
    name: str, factory: Callable[[], Any]
) -> None:
    app = _fastapi(factory())
    found = sorted(
        {call for route in api_routes(app.routes) for call in _sync_calls(route.dependant)}
    )
    assert found == [], f"{name}: write these as async def: {found}"
