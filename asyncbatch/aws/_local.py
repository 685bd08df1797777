"""A local AWS for demos and tests: moto's server on 127.0.0.1, in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOCAL_ENV", "local_aws"]

# Credentials and region moto accepts; never real ones.
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def local_aws(*, set_environment: bool = True) -> Iterator[str]:
    """Start a moto server on 127.0.0.1 (a free port) and yield its endpoint URL.

    With ``set_environment`` (the default), fake credentials, the region and
    ``AWS_ENDPOINT_URL`` are set for the duration, so that any boto3 / aioboto3 client
    made inside talks to it; the previous environment is restored afterwards."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*LOCAL_ENV, "AWS_ENDPOINT_URL")}
    try:
        if set_environment:
            os.environ.update(LOCAL_ENV)
            os.environ["AWS_ENDPOINT_URL"] = endpoint
        yield endpoint
    finally:
        if set_environment:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        server.stop()
