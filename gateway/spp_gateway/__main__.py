"""``python -m spp_gateway [--host H] [--port P] [--workers N]``.

uvloop and httptools, no ``Server`` banner, and no uvicorn access log: the
request context middleware writes one structured line per request instead.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from spp_shared.kit.cli import require_assertion_key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="spp_gateway", description="Run the SP+ gateway.")
    parser.add_argument("--host", default=os.environ.get("SPP_GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPP_GATEWAY_PORT", "8000")))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("SPP_GATEWAY_WORKERS", "1"))
    )
    args = parser.parse_args(argv)
    require_assertion_key()
    uvicorn.run(
        "spp_gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        server_header=False,
        date_header=True,
        access_log=False,
        log_config=None,  # our JSON logging (configure_logging) covers uvicorn too
        log_level=os.environ.get("SPP_GATEWAY_LOG_LEVEL", "info").lower(),
    )


if __name__ == "__main__":
    main()
