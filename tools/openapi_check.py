"""Check the merged OpenAPI against the real platform (`make openapi-check`, `make fuzz`).

Starts a throw-away platform with `make run`'s launcher (deploy/local/run.py:
the four services, the development OIDC provider and the gateway, on fresh
SQLite files and free ports, without the demo data), saves the gateway's
merged /openapi.json, then, as chosen:

- ``--lint``: Redocly's recommended rules (redocly.yaml), 0 errors;
- ``--typescript``: openapi-typescript generates a client from it;
- ``--fuzz SECONDS``: schemathesis, as the bootstrap administrator, with the
  checks the API promises (no 5xx, only declared status codes and content
  types, bodies matching their schemas), 0 failures. A few sites, an API key
  and an agent mapping are created first, and path parameters name them half
  the time, so reads and writes reach real objects, not only 404s.

Exits non-zero on the first step that fails. Rate limits are off for the run:
a fuzzer spending the platform's budget in seconds would learn only 429s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from spp_shared.contracts.sites import SITE_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "deploy" / "local" / "run.py"
# Pinned: a newer rule set must not turn CI red on its own.
REDOCLY = "@redocly/cli@2.77.0"
OPENAPI_TYPESCRIPT = "openapi-typescript@7.13.0"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# run.py's layout: the gateway on the base port, the others up to base + 9.
PORT_SPAN = 10


def _ports_free(base: int) -> bool:
    for port in range(base, base + PORT_SPAN):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_base() -> int:
    rng = secrets.SystemRandom()
    for _ in range(50):
        base = rng.randrange(20000, 60000, PORT_SPAN)
        if _ports_free(base):
            return base
    raise RuntimeError("no ten consecutive free ports found")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the platform exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout:.0f} s; see {log}")


@contextmanager
def platform(var: Path, token: str) -> Iterator[str]:
    """The platform started by run.py in ``var``; yields the gateway's URL."""
    base = free_port_base()
    env = dict(os.environ)
    # Whatever the caller's shell exports must not point this platform at another's databases.
    for name in list(env):
        if name.startswith("SPP_"):
            del env[name]
    env.update(SPP_BOOTSTRAP_TOKEN=token, SPP_GATEWAY_RATE_LIMITS_ENABLED="false")
    var.mkdir(parents=True, exist_ok=True)
    log = var / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(RUN), "--var", str(var), "--port-base", str(base), "--no-demo"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        gateway = f"http://127.0.0.1:{base}"
        try:
            # /readyz: every service behind the gateway answers, not only the gateway.
            _wait_ready(gateway + "/readyz", proc, log, timeout=300)
            yield gateway
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def save_spec(gateway: str, path: Path, patience: float = 120) -> None:
    """The merged document, once every service is in it: a service's first
    document can take longer to build than the gateway waits for it (2 s), and
    the gateway asks again 5 s after leaving one out."""
    deadline = time.monotonic() + patience
    while True:
        resp = httpx.get(gateway + "/openapi.json", timeout=30)
        resp.raise_for_status()
        unavailable = resp.json()["info"].get("x-unavailable-services")
        if not unavailable:
            path.write_bytes(resp.content)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"services missing from the merged document: {unavailable}")
        time.sleep(2)


def _npx(*args: str) -> list[str]:
    npx = shutil.which("npx")
    if npx is None:
        raise RuntimeError("npx (Node.js) is needed for this check")
    return [npx, "--yes", *args]


def lint(spec: Path) -> int:
    return subprocess.run(
        _npx(REDOCLY, "lint", str(spec), "--config", str(ROOT / "redocly.yaml")), cwd=ROOT
    ).returncode


def typescript(spec: Path, out: Path) -> int:
    return subprocess.run(_npx(OPENAPI_TYPESCRIPT, str(spec), "-o", str(out)), cwd=ROOT).returncode


def seed(gateway: str, token: str) -> dict[str, list[str]]:
    """Objects for the fuzzer to find, by path parameter name: their references."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway, headers=auth, timeout=30) as client:

        def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
            resp = client.post(path, json=body)
            if resp.status_code != 201:
                raise RuntimeError(f"seeding {path}: {resp.status_code} {resp.text[:300]}")
            answer: dict[str, Any] = resp.json()
            return answer

        refs: list[str] = []
        for n in range(3):
            ref = f"caf:CHECK-{n}"
            found = client.get(f"/v1/sites/{ref}")  # a platform checked before
            site = (
                found.json()
                if found.status_code == 200
                else created("/v1/sites", {**SITE_EXAMPLE, "external_code": f"CHECK-{n}"})
            )
            refs += [site["id"], ref]
        networks = [n["code"] for n in client.get("/v1/networks").json()["items"]]
        key = created(
            "/v1/api-keys",
            {"name": "checked", "owner": "openapi_check", "roles": ["agent"], "network": "caf"},
        )
        mapping = created(
            "/v1/agent-mappings",
            {
                "match": "email_domain",
                "value": f"check-{secrets.token_hex(4)}.example.fr",
                "roles": ["agent"],
                "network": "caf",
            },
        )
    return {
        "ref": refs,
        "code": networks,
        "key_id": [key["id"]],
        "mapping_id": [mapping["id"]],
    }


def schemathesis_config(path: Path, values: dict[str, list[str]]) -> None:
    """Authentication by the document's own scheme (otherwise schemathesis also
    invents an X-API-Key: two credentials, 401 on everything), and the seeded
    objects as dictionaries of path parameters."""
    lines = ["[auth.openapi.bearerToken]", 'bearer = "${SPP_CHECK_TOKEN}"', ""]
    for name, entries in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(entries)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in values]
    path.write_text("\n".join(lines) + "\n")


def fuzz(gateway: str, spec: Path, token: str, seconds: int, report: Path) -> int:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    config = report.with_name("schemathesis.toml")
    schemathesis_config(config, seed(gateway, token))
    return subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            str(spec),
            "--url",
            gateway,
            "--checks",
            ",".join(CHECKS),
            "--max-time",
            str(seconds),
            "--request-timeout",
            "30",
            "--workers",
            "2",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        cwd=report.parent,  # its .schemathesis/ cache goes with the reports
        env={**os.environ, "SPP_CHECK_TOKEN": token},
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--lint", action="store_true", help="Redocly lint, 0 errors")
    parser.add_argument("--typescript", action="store_true", help="openapi-typescript generates")
    parser.add_argument("--fuzz", type=int, metavar="SECONDS", help="schemathesis for this long")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / ".var" / "openapi",
        help="the spec, the client, the reports and the platform's databases and logs",
    )
    parser.add_argument(
        "--gateway",
        metavar="URL",
        help="check this running platform (`make run`'s) instead of starting one; "
        "--fuzz then needs its admin token in SPP_TOKEN",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    spec = args.out / "openapi.json"
    running: contextlib.AbstractContextManager[str]
    if args.gateway:
        token = os.environ.get("SPP_TOKEN", "")
        running = contextlib.nullcontext(args.gateway.rstrip("/"))
    else:
        token = "check-" + secrets.token_urlsafe(24)
        var = args.out / "platform"  # kept after the run: its logs explain a failure
        shutil.rmtree(var, ignore_errors=True)
        running = platform(var, token)
    with running as gw:
        save_spec(gw, spec)
        print(f"merged OpenAPI saved to {spec}", flush=True)
        steps: list[tuple[str, int]] = []
        if args.lint:
            steps.append(("Redocly lint", lint(spec)))
        if args.typescript:
            steps.append(("openapi-typescript", typescript(spec, args.out / "schema.d.ts")))
        if args.fuzz:
            report = args.out / "schemathesis-junit.xml"
            steps.append(("schemathesis", fuzz(gw, spec, token, args.fuzz, report)))
    failed = [name for name, code in steps if code != 0]
    for name, code in steps:
        print(f"{name}: {'ok' if code == 0 else f'FAILED ({code})'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
