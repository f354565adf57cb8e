"""Start and stop the project-local services: PostgreSQL 15 + PostGIS, Redis and an SMTP sink.

Everything lives under ``settings.data_dir`` (``.data/`` by default) and listens on loopback only,
on the ports in settings (``ODIM_PG_PORT``, ``ODIM_REDIS_PORT``, ``ODIM_SMTP_SINK_PORT``), so a
development stack and a test stack can run side by side.

PostgreSQL refuses to run as root (docs/pitfalls.md): when we are root the cluster runs as the
unprivileged system user ``odim-pg``. If that user cannot reach ``.data/`` (a checkout inside a
0700 directory such as ``mktemp -d``), the cluster's files go to ``/var/tmp/odim-pg/<hash>`` and
``.data/pg`` is a symlink to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from settings import PROJECT_ROOT, Settings, get_settings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "odim-pg"
DB_NAME = "odim"
DB_ROLE = "odim"


class ServiceError(RuntimeError):
    pass


@dataclass
class Paths:
    root: Path

    @property
    def pg(self) -> Path:
        return self.root / "pg"

    @property
    def pg_log(self) -> Path:
        return self.root / "log" / "postgres.log"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def smtp_pid(self) -> Path:
        return self.root / "run" / "smtp-sink.pid"

    @property
    def smtp_log(self) -> Path:
        return self.root / "log" / "smtp-sink.log"


def _paths(settings: Settings) -> Paths:
    return Paths(Path(settings.data_dir).resolve())


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not start listening on 127.0.0.1:{port} within {timeout:.0f}s")


def _ensure_ours(port: int, pidfile: Path, what: str) -> bool:
    """True when ``port`` is served by our own ``what`` (its pid file exists); False when the port is
    free. Raises ``ServiceError`` when something else holds the port, e.g. another checkout's stack."""
    if not _port_open(port):
        return False
    if pidfile.exists():
        return True
    raise ServiceError(
        f"127.0.0.1:{port} is in use by a process that is not this checkout's {what} "
        f"(another checkout's stack?). Stop it, or choose other ports (see .env.example)."
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _run(cmd: list[str], *, as_pg_user: bool = False, check: bool = True, **kw) -> subprocess.CompletedProcess:
    if as_pg_user and _is_root():
        cmd = ["runuser", "-u", PG_USER, "--", *cmd]
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def _ensure_pg_user() -> None:
    if not _is_root():
        return
    if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER], check=True
        )


def _pg_data_dir(paths: Paths) -> Path:
    """Where the cluster's files live (see module docstring for the root case)."""
    if paths.pg.is_symlink() or not _is_root():
        return paths.pg.resolve() if paths.pg.is_symlink() else paths.pg
    if paths.pg.exists():
        return paths.pg
    paths.root.mkdir(parents=True, exist_ok=True)
    reachable = _run(["test", "-x", str(paths.root)], as_pg_user=True, check=False).returncode == 0
    if reachable:
        return paths.pg
    target = Path("/var/tmp/odim-pg") / hashlib.sha1(str(paths.root).encode()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)
    paths.pg.symlink_to(target)
    return target


def _pg_up(settings: Settings, paths: Paths, fast: bool) -> None:
    if not (PG_BIN / "postgres").exists():
        raise ServiceError("PostgreSQL 15 is not installed: run `make bootstrap` (apt-get install postgresql-15-postgis-3)")
    _ensure_pg_user()
    data = _pg_data_dir(paths)
    data.mkdir(parents=True, exist_ok=True)
    # The server writes its log as the cluster's user: next to the cluster when .data/ is out of its reach.
    log_file = paths.pg_log if data == paths.pg else data.parent / f"{data.name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if _is_root():
        shutil.chown(data, PG_USER, PG_USER)
        shutil.chown(log_file.parent, PG_USER, PG_USER)
    os.chmod(data, 0o700)
    if not (data / "PG_VERSION").exists():
        _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", DB_ROLE, "--auth=trust", "-E", "UTF8",
              "--locale=C.UTF-8"], as_pg_user=True)
    if _ensure_ours(settings.pg_port, data / "postmaster.pid", "PostgreSQL"):
        return
    options = [
        f"-p {settings.pg_port}", "-c listen_addresses=127.0.0.1", f"-k {data}",
        "-c max_connections=300", "-c shared_buffers=512MB", "-c max_parallel_workers_per_gather=0",
        "-c jit=off",
    ]
    if fast:  # test clusters: durability is not needed, speed is
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-w", "-t", "60",
          "-o", " ".join(options), "start"], as_pg_user=True)
    _wait_port(settings.pg_port, "PostgreSQL")
    exists = _psql(settings, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
    if exists.strip() != "1":
        _psql(settings, "postgres", f"CREATE DATABASE {DB_NAME}")


def _psql(settings: Settings, db: str, sql: str) -> str:
    out = _run(["psql", "-h", "127.0.0.1", "-p", str(settings.pg_port), "-U", DB_ROLE, "-d", db, "-tAc", sql])
    return out.stdout


def _pg_down(settings: Settings, paths: Paths) -> None:
    if not paths.pg.exists():
        return
    data = paths.pg.resolve()
    if (data / "postmaster.pid").exists():
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], as_pg_user=True, check=False)


def _redis_up(settings: Settings, paths: Paths) -> None:
    if _ensure_ours(settings.redis_port, paths.redis / "redis.pid", "Redis"):
        return
    if shutil.which("redis-server") is None:
        raise ServiceError("redis-server is not installed: run `make bootstrap` (apt-get install redis-server)")
    paths.redis.mkdir(parents=True, exist_ok=True)
    _run(["redis-server", "--port", str(settings.redis_port), "--bind", "127.0.0.1", "--dir", str(paths.redis),
          "--daemonize", "yes", "--pidfile", str(paths.redis / "redis.pid"), "--logfile",
          str(paths.redis / "redis.log"), "--appendonly", "yes", "--save", "", "--protected-mode", "yes"])
    _wait_port(settings.redis_port, "Redis")
    # The port opens before the append-only file is replayed; until then every command gets LOADING.
    for _ in range(600):
        answer = subprocess.run(["redis-cli", "-p", str(settings.redis_port), "ping"], capture_output=True, text=True)
        if answer.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise ServiceError("Redis did not finish loading its data within 60 s")


def _redis_down(settings: Settings, paths: Paths) -> None:
    if _port_open(settings.redis_port):
        _run(["redis-cli", "-p", str(settings.redis_port), "shutdown", "nosave"], check=False)
    pidfile = paths.redis / "redis.pid"
    if pidfile.exists():  # started from this data directory on another port (a test worker's)
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        pidfile.unlink(missing_ok=True)


def _smtp_up(settings: Settings, paths: Paths) -> None:
    if _ensure_ours(settings.smtp_sink_port, paths.smtp_pid, "SMTP sink"):
        return
    paths.mail.mkdir(parents=True, exist_ok=True)
    paths.smtp_pid.parent.mkdir(parents=True, exist_ok=True)
    paths.smtp_log.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.smtp_log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.smtp_sink", "--port", str(settings.smtp_sink_port), "--dir", str(paths.mail)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, cwd=PROJECT_ROOT,
        )
    paths.smtp_pid.write_text(str(proc.pid))
    _wait_port(settings.smtp_sink_port, "SMTP sink")


def _smtp_down(settings: Settings, paths: Paths) -> None:
    if not paths.smtp_pid.exists():
        return
    try:
        os.kill(int(paths.smtp_pid.read_text()), signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        pass
    paths.smtp_pid.unlink(missing_ok=True)
    deadline = time.monotonic() + 5
    while _port_open(settings.smtp_sink_port) and time.monotonic() < deadline:
        time.sleep(0.1)


def up(settings: Settings | None = None, *, fast: bool = False) -> None:
    """Start PostgreSQL+PostGIS, Redis and the SMTP sink (each only if not already listening).
    Raises ``ServiceError`` with the fix when a binary is missing or a service does not start."""
    settings = settings or get_settings()
    paths = _paths(settings)
    paths.root.mkdir(parents=True, exist_ok=True)
    _pg_up(settings, paths, fast)
    _redis_up(settings, paths)
    _smtp_up(settings, paths)


def down(settings: Settings | None = None) -> None:
    """Stop whatever ``up`` started (idempotent)."""
    settings = settings or get_settings()
    paths = _paths(settings)
    _smtp_down(settings, paths)
    _redis_down(settings, paths)
    _pg_down(settings, paths)


def status(settings: Settings | None = None) -> dict[str, bool]:
    """Which services answer on their port: ``{"postgresql": bool, "redis": bool, "smtp": bool}``."""
    settings = settings or get_settings()
    return {
        "postgresql": _port_open(settings.pg_port),
        "redis": _port_open(settings.redis_port),
        "smtp": _port_open(settings.smtp_sink_port),
    }


def up_worker(settings: Settings) -> None:
    """A parallel test worker's own stack (PostgreSQL cluster, Redis, SMTP sink) under its
    ``settings.data_dir`` and ports: fully isolated, so a test may even restart its PostgreSQL. Started
    fresh each time (the data directory is wiped first); the caller migrates it."""
    reset(settings)
    up(settings, fast=True)


def down_worker(settings: Settings) -> None:
    """Stop a test worker's stack and delete its data directory (idempotent)."""
    reset(settings)


def reset(settings: Settings | None = None) -> None:
    """Stop everything and delete the data directory (the PostgreSQL cluster included)."""
    settings = settings or get_settings()
    down(settings)
    paths = _paths(settings)
    if paths.pg.is_symlink():
        shutil.rmtree(paths.pg.resolve(), ignore_errors=True)
    shutil.rmtree(paths.root, ignore_errors=True)
