"""The commands a new user types, run as real processes on the embedded default (SQLite)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx


def drumbeat(*args: str, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    env.pop("DRUMBEAT_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "drumbeat.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_workspace_prints_exactly_one_json_line_and_the_token_works(tmp_path):
    result = drumbeat("init-workspace", "Acme", "--owner", "ops@acme.test", "--password", "s3cret-pass", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    boot = json.loads(lines[0])
    assert set(boot) == {"workspace_id", "user_id", "token"}
    assert (tmp_path / "drumbeat.db").exists() and (tmp_path / "drumbeat.db.secret").exists()
    assert oct((tmp_path / "drumbeat.db.secret").stat().st_mode & 0o777) == "0o600"

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "serve", "--port", str(port), "--no-worker"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={k: v for k, v in os.environ.items() if k != "DRUMBEAT_DATABASE_URL"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "database": "ok"}
        me = httpx.get(f"{base}/api/v1/workspace", headers={"Authorization": f"Bearer {boot['token']}"})
        assert me.status_code == 200 and me.json()["name"] == "Acme"
        assert httpx.get(f"{base}/api/v1/workspace").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_demo_runs_a_campaign_to_completion_and_prints_an_owner_token(tmp_path):
    result = drumbeat("demo", "--leads", "200", "--port", str(free_port()), "--exit-when-done", cwd=tmp_path,
                      timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Owner token (sign in to the dashboard with it): dbt_" in result.stdout
    assert "Campaign completed: 400 messages accepted, 200 leads completed, 0 failed." in result.stdout


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path):
    for _ in range(2):
        result = drumbeat("migrate", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_a_worker_refuses_lanes_it_cannot_use_and_says_why(tmp_path):
    sqlite = drumbeat("worker", "--lanes", "2", cwd=tmp_path, timeout=60)
    assert sqlite.returncode == 2 and "more than one lane needs PostgreSQL" in sqlite.stderr
    too_few = drumbeat("worker", "--lanes", "4", "--concurrency", "3", cwd=tmp_path, timeout=60)
    assert too_few.returncode == 2 and "4 lanes need a --concurrency of at least 4" in too_few.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
