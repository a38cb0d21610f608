"""A throwaway PostgreSQL cluster of the test's own (issue 8, database faults).

Tests that restart, crash or fill up a server must never do it to the shared test
PostgreSQL (other tests run against it in parallel), so they start their own: initdb in a
fresh directory, a free loopback port, trust auth, no Unix socket. PostgreSQL refuses to
run as root, so under root every command runs as the `postgres` OS user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.conftest import IN_CI


def pg_bin() -> Path | None:
    """The server binaries: DRUMBEAT_PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("DRUMBEAT_PG_BIN"):
        return Path(os.environ["DRUMBEAT_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class Cluster:
    def __init__(self, root: Path, bindir: Path, port: int) -> None:
        self.root, self.bin, self.port = root, bindir, port
        self.data, self.logfile = root / "data", root / "server.log"

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(as_postgres([str(self.bin / args[0]), *args[1:]]), capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}{self.log_tail()}"

    def log_tail(self, n: int = 3000) -> str:
        return self.logfile.read_text()[-n:] if self.logfile.exists() else ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "max_connections = 100\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "30", "start")

    def start_nowait(self) -> None:
        """Start the server and return at once: the caller finds out when it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-W", "start")

    def restart(self, mode: str) -> None:
        """`fast`: sessions terminated, clean shutdown; `immediate`: killed, crash recovery at start."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "30", "-m", mode, "restart")

    def stop(self, mode: str = "immediate") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop")

    def libpq_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def url(self, dbname: str) -> str:
        """SQLAlchemy form, as DRUMBEAT_DATABASE_URL and make_engine take it."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.libpq_url(), autocommit=True, connect_timeout=5)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running cluster, stopped and removed on the way out whatever happened."""
    bindir = pg_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        message = "no PostgreSQL server binaries (initdb, pg_ctl) to start a throwaway cluster"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp_path: its root-only parents would keep the postgres user out.
    root = Path(tempfile.mkdtemp(prefix="drumbeat-pg-"))
    chown_to_postgres(root)
    cluster = Cluster(root, bindir, _free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
