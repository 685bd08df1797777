"""A local AWS for demos, tests and benchmarks: moto's server on 127.0.0.1, in this
process (``local_aws``) or in a process of its own (``local_aws_process``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOCAL_ENV", "local_aws", "local_aws_process"]

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
    try:
        with _environment(endpoint, set_environment):
            yield endpoint
    finally:
        server.stop()


@contextmanager
def local_aws_process(*, set_environment: bool = True) -> Iterator[str]:
    """As ``local_aws``, with the server in a process of its own (``python -m
    moto.server``), so that it does not share this interpreter's GIL; it is stopped at
    the end."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        ends = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > ends or process.poll() is not None:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.05)
        with _environment(endpoint, set_environment):
            yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def _environment(endpoint: str, set_environment: bool) -> Iterator[None]:
    """Fake credentials, the region and ``AWS_ENDPOINT_URL`` for the duration (when
    ``set_environment``); the previous environment restored afterwards."""
    if not set_environment:
        yield
        return
    saved = {k: os.environ.get(k) for k in (*LOCAL_ENV, "AWS_ENDPOINT_URL")}
    try:
        os.environ.update(LOCAL_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
