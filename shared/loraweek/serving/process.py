"""Start the server as a background process and always stop it (notebooks, tests, benchmarks).

    with ServerProcess(["--adapter", str(adapter)], api_key=key) as server:
        client = server.openai_client()
        ...
    # stopped here, also when a cell inside the block raised

The key travels in the child's environment (`LORAWEEK_API_KEYS`), never on its command
line, which any user of the machine can read in the process list.  With `tls=` (tls.py's
files) the server speaks https, and the health probe and `openai_client()` trust that CA only.
"""
from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from loraweek.serving.security import KEYS_ENV


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, args: list[str], api_key: str | None = None, port: int | None = None,
                 env: dict | None = None, startup_timeout: float = 300, tls=None):
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.port = port or free_port()
        self.tls = tls
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify = tls.client_context() if tls else True
        if tls:
            args = [*args, "--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
        self.args, self.extra_env, self.startup_timeout = list(args), dict(env or {}), startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> "ServerProcess":
        env = {**os.environ, **self.extra_env, KEYS_ENV: self.api_key}
        shared = str(Path(__file__).resolve().parents[2])   # the package works without pip install
        env["PYTHONPATH"] = shared + os.pathsep + env.get("PYTHONPATH", "")
        fd, log = tempfile.mkstemp(prefix="loraweek-serve-", suffix=".log")
        self.log_path = Path(log)
        self.proc = subprocess.Popen([sys.executable, "-m", "loraweek.serving", *self.args, "--port", str(self.port)],
                                     env=env, stdout=fd, stderr=subprocess.STDOUT, start_new_session=True)
        os.close(fd)
        atexit.register(self.stop)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                r = httpx.get(self.base_url + "/health", timeout=2, verify=self.verify)
                if r.status_code == 200:
                    return
                if "failed to load" in r.text:
                    raise RuntimeError(f"the server could not load its model: {r.json()['error']['message']}")
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"the server was not ready after {self.startup_timeout:.0f} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)       # uvicorn shuts down gracefully on SIGTERM
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def openai_client(self, **kwargs):
        from openai import DefaultHttpxClient, OpenAI

        if self.tls and "http_client" not in kwargs:
            kwargs["http_client"] = DefaultHttpxClient(verify=self.verify)
        return OpenAI(base_url=self.base_url + "/v1", **{"api_key": self.api_key, **kwargs})

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
