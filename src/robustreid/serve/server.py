"""Running the app with uvicorn: in the foreground (``robustreid serve``) or in a background thread on a free
loopback port (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Optional


def _uvicorn():
    try:
        import uvicorn
    except ImportError:
        raise ImportError("the service needs uvicorn: pip install 'robustreid[serve]'") from None
    return uvicorn


def serve_forever(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    uvicorn = _uvicorn()
    uvicorn.run(app, host=host, port=int(port), log_level=log_level, access_log=log_level == "debug")


class ServerThread:
    """``with ServerThread(app) as srv: httpx.get(srv.url + "/health")`` — uvicorn on a free port of ``host``."""

    def __init__(self, app, host: str = "127.0.0.1", log_level: str = "warning"):
        uvicorn = _uvicorn()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "ServerThread":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
