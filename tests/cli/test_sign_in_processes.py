"""Sign-in throttling across real processes: two `drumbeat serve` processes on one database
(SQLite file and PostgreSQL) share the failed sign-ins, because they live in the database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager

import httpx

from tests.cli.test_commands import free_port

PASSWORD = "correct horse battery"


@contextmanager
def serving(env: dict, cwd):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "serve", "--port", str(port), "--no-worker"],
                              cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        server.terminate()
        server.wait(timeout=30)


def sign_in(client: httpx.Client, password: str) -> httpx.Response:
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post("/login", data={"csrf": csrf, "email": "ops@acme.test", "password": password})


def test_failures_at_one_serving_process_refuse_sign_in_at_the_other(db_url, secret_key, tmp_path):
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key}
    made = subprocess.run([sys.executable, "-m", "drumbeat.cli", "init-workspace", "Acme", "--owner", "ops@acme.test",
                           "--password", PASSWORD], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert set(json.loads(made.stdout)) == {"workspace_id", "user_id", "token"}

    with ExitStack() as stack:
        first, second = (stack.enter_context(serving(env, tmp_path)) for _ in range(2))
        for i in range(5):
            assert sign_in(first if i % 2 else second, "wrong").status_code == 401
        refused = sign_in(first, PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert sign_in(second, PASSWORD).status_code == 429
