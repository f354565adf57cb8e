"""Geosearch benchmark: ``providersNearby`` over HTTP GraphQL against the very same SQL run directly.

One run does everything, against the development stack (settings.py defaults: PostgreSQL :54320,
database ``odim``)::

    uv run python bench/geosearch.py                 # 1,000,000 providers, 20 s per run after 3 s warm-up
    uv run python bench/geosearch.py --help

1. Seeds: the demo marketplace if the ``services`` table is empty (real cities), then synthetic
   providers with COPY until there are ``--providers`` rows, then ``ANALYZE providers``.
2. Builds a deterministic list of query points (``random.Random(42)``) near the seeded cities
   (cities drawn by population, as the bulk providers are), radius ``--radius-km``, a share
   ``--category-mix`` of them filtered on ``plumbing``, ``first: 20``.
3. Starts the API itself (``uv run uvicorn server:app ... --workers N``, ``--server-workers``) on
   ``--port`` and stops it at the end, whatever happens.
4. Runs, each with ``--concurrency`` clients for ``--duration`` seconds after ``--warmup`` seconds:
   * a null HTTP baseline (``GET /healthz``): the ceiling of this load generator against this server;
   * ``providersNearby`` over HTTP/1.1 keep-alive;
   * ``domain.provider.NEARBY_SQL`` through an asyncpg pool (prepared statements), same parameters.
   The two HTTP runs are driven by ``--client``: ``wrk`` (default when the binary is installed; a
   generated Lua script POSTs the same query points; ``-t 2``) or ``httpx`` (asyncio tasks sharing
   one ``httpx.AsyncClient`` in this process; also supports ``--requests``). The SQL run is always
   asyncio tasks in this process.
5. Prints the figures, the machine, the data set, ``EXPLAIN (ANALYZE, BUFFERS)`` of one query, and
   writes a JSON copy to ``bench/results/geosearch-<UTC timestamp>.json``.

Figures only: nothing here asserts a time (docs/conventions.md). Responses are checked for errors and a
few queries are checked to return the same providers over HTTP and SQL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import asyncpg
import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from devstack import seed as seed_module
from domain.providers.provider import NEARBY_SQL, GeoPoint
from models.db import dispose_engine
from settings import get_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FIRST = 20
CATEGORY = "plumbing"
#: Query points fall uniformly within this distance of a city centre (bulk providers: 40 km).
POINT_SPREAD_M = 20_000.0
QUERY_POINTS = 2_000
#: Same session settings as the API's engine (models/db.py), so both runs plan alike.
SERVER_SETTINGS = {"max_parallel_workers_per_gather": "0", "jit": "off"}

GRAPHQL_QUERY = """
query Nearby($near: GeoPointInput!, $radiusKm: Float!, $category: String, $first: Int) {
  providersNearby(near: $near, radiusKm: $radiusKm, category: $category, first: $first) {
    edges { node { distanceMeters provider { id displayName rating categories } } }
  }
}
""".strip()

console = Console() if sys.stdout.isatty() else Console(width=160)

#: wrk threads (each drives concurrency / WRK_THREADS connections).
WRK_THREADS = 2
#: The Lua `response` function checks one GraphQL response body in this many for '"errors"' and
#: counts its results (1 = every response; a plain substring search over ~4 KB is cheap next to
#: the request itself).
WRK_CHECK_EVERY = 1
#: Prefix of the machine-readable lines the Lua `done` function prints.
WRK_MARK = "ODIM_WRK"


# --------------------------------------------------------------------------------------------
# Query points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryPoint:
    latitude: float
    longitude: float
    category: str | None
    city: str


def query_points(n: int, category_mix: float, *, rng_seed: int = 42) -> list[QueryPoint]:
    """``n`` points near the seeded cities: city drawn with probability proportional to its
    population (where the bulk providers are, and where people search), point uniform within
    POINT_SPREAD_M of its centre; a share ``category_mix`` filtered on ``plumbing``."""
    rng = random.Random(rng_seed)
    cities = seed_module.seed_cities()
    weights = [c.population for c in cities]
    points = []
    for city in rng.choices(cities, weights=weights, k=n):
        lat, lon = seed_module.random_point_near(rng, city.latitude, city.longitude, POINT_SPREAD_M)
        category = CATEGORY if rng.random() < category_mix else None
        points.append(QueryPoint(round(lat, 6), round(lon, 6), category, city.name))
    return points


# --------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc)
# --------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += _descendants(int(child))
    except OSError:
        pass
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants (the uv wrapper + uvicorn)."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of the whole machine, from /proc/stat. Steal is time a virtual
    CPU wanted to run but the hypervisor ran something else: not counted as busy."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7]
    total = sum(values[:8])
    return total - idle - steal, steal, total


def machine_cores(start: tuple[float, float, float], end: tuple[float, float, float]) -> tuple[float, float]:
    """(busy, steal) cores between two machine_cpu() samples."""
    (busy0, steal0, total0), (busy1, steal1, total1) = start, end
    ncpu = os.cpu_count() or 1
    span = max(1, total1 - total0)
    return (busy1 - busy0) / span * ncpu, (steal1 - steal0) / span * ncpu


# --------------------------------------------------------------------------------------------
# The load loop
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    name: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    avg_results: float | None = None
    loadgen_cpu_cores: float = 0.0
    server_cpu_cores: float | None = None
    machine_busy_cores: float = 0.0
    steal_cores: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    client: str = "httpx"
    #: wrk only: its raw figures (socket/status errors, GraphQL bodies checked, ...).
    wrk: dict[str, Any] | None = None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 100]) of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


#: An operation takes the request number and returns (ok, results, error message or None).
Operation = Callable[[int], Awaitable[tuple[bool, int | None, str | None]]]


async def run_load(
    name: str, op: Operation, *, concurrency: int, warmup: float, duration: float, requests: int | None,
    server_pid: int | None,
) -> RunResult:
    """``concurrency`` tasks call ``op`` back to back for ``warmup`` seconds, then for the measured
    window: ``duration`` seconds (every request that completes inside the window is recorded), or,
    with ``requests``, until that many requests have completed. Throughput = recorded requests /
    window. CPU use is sampled at the window's edges."""
    counter = itertools.count()
    latencies: list[float] = []
    results: list[int] = []
    result = RunResult(name)
    loop_start = time.perf_counter()
    measure_start = loop_start + warmup
    measure_end = math.inf if requests is not None else measure_start + duration
    done = asyncio.Event()
    marks: dict[str, Any] = {}

    def sample() -> dict[str, Any]:
        return {"t": time.perf_counter(), "cpu": time.process_time(), "machine": machine_cpu(),
                "server": tree_cpu_seconds(server_pid) if server_pid else None}

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, measure_start - time.perf_counter()))
        marks["start"] = sample()
        if requests is None:
            await asyncio.sleep(max(0.0, measure_end - time.perf_counter()))
        else:
            await done.wait()
        marks["end"] = sample()

    async def worker() -> None:
        while not done.is_set() and time.perf_counter() < measure_end:
            i = next(counter)
            started = time.perf_counter()
            try:
                ok, n, error = await op(i)
            except Exception as exc:
                ok, n, error = False, None, f"{type(exc).__name__}: {exc}"
            finished = time.perf_counter()
            if not (measure_start <= finished <= measure_end) or done.is_set():
                continue
            latencies.append(finished - started)
            if not ok:
                result.errors += 1
                if len(result.first_errors) < 5:
                    result.first_errors.append(str(error)[:300])
            elif n is not None:
                results.append(n)
            if requests is not None and len(latencies) >= requests:
                done.set()

    sampler_task = asyncio.create_task(sampler())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done.set()
    await sampler_task
    start, end = marks["start"], marks["end"]
    window = (measure_end - measure_start) if requests is None else (end["t"] - start["t"])
    wall = end["t"] - start["t"]
    latencies.sort()
    result.requests = len(latencies)
    result.seconds = window
    result.throughput = len(latencies) / window if window > 0 else 0.0
    result.p50_ms = percentile(latencies, 50) * 1000
    result.p95_ms = percentile(latencies, 95) * 1000
    result.p99_ms = percentile(latencies, 99) * 1000
    result.max_ms = latencies[-1] * 1000 if latencies else math.nan
    result.mean_ms = sum(latencies) / len(latencies) * 1000 if latencies else math.nan
    result.avg_results = sum(results) / len(results) if results else None
    result.loadgen_cpu_cores = (end["cpu"] - start["cpu"]) / wall
    if start["server"] is not None:
        result.server_cpu_cores = (end["server"] - start["server"]) / wall
    result.machine_busy_cores, result.steal_cores = machine_cores(start["machine"], end["machine"])
    return result


# --------------------------------------------------------------------------------------------
# The load loop, wrk flavour
# --------------------------------------------------------------------------------------------

#: Shared by both wrk scripts: thread bookkeeping and `done`, which prints one
#: "ODIM_WRK <key> <value>" line per figure (latencies in microseconds) for run_wrk to parse.
WRK_LUA_COMMON = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function total(name)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get(name) or 0) end
  return n
end

function done(summary, latency, requests)
  local function out(key, value) io.write(string.format("%MARK% %s %s\n", key, value)) end
  local e = summary.errors
  out("requests", string.format("%.0f", summary.requests))
  out("duration_us", string.format("%.0f", summary.duration))
  out("bytes", string.format("%.0f", summary.bytes))
  out("errors_connect", string.format("%.0f", e.connect))
  out("errors_read", string.format("%.0f", e.read))
  out("errors_write", string.format("%.0f", e.write))
  out("errors_timeout", string.format("%.0f", e.timeout))
  out("errors_status", string.format("%.0f", e.status))
  for _, p in ipairs({50, 95, 99}) do
    out(string.format("p%d_us", p), string.format("%.0f", latency:percentile(p)))
  end
  out("max_us", string.format("%.0f", latency.max))
  out("mean_us", string.format("%.1f", latency.mean))
  out("checked", string.format("%.0f", total("checked")))
  out("checked_ok", string.format("%.0f", total("checked_ok")))
  out("graphql_errors", string.format("%.0f", total("graphql_errors")))
  out("results", string.format("%.0f", total("results")))
  for _, t in ipairs(threads) do
    local first = t:get("first_error")
    if first then
      out("first_error", (string.gsub(first, "%s+", " ")))
      break
    end
  end
end
""".replace("%MARK%", WRK_MARK)

#: The GraphQL script: BODIES (a Lua table of JSON bodies, one per query point, in order) is
#: prepended. Each thread pre-formats the requests and walks the list from its own offset.
WRK_LUA_GRAPHQL = r"""
local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}

function init(args)
  reqs = {}
  for k, body in ipairs(BODIES) do reqs[k] = wrk.format("POST", "/graphql", headers, body) end
  n = #reqs
  i = math.floor(((tid or 1) - 1) * n / THREADS)
  seen, checked, checked_ok, graphql_errors, results = 0, 0, 0, 0, 0
end

request = function()
  local r = reqs[(i % n) + 1]
  i = i + 1
  return r
end

function response(status, hdrs, body)
  seen = seen + 1
  if seen % CHECK_EVERY ~= 0 then return end
  checked = checked + 1
  if status ~= 200 then return end -- >= 400 is counted by wrk itself
  if body == nil or string.find(body, '"errors"', 1, true) or not string.find(body, '"providersNearby"', 1, true) then
    graphql_errors = graphql_errors + 1
    if first_error == nil then first_error = string.sub(body or "<no body>", 1, 300) end
    return
  end
  checked_ok = checked_ok + 1
  local p = 1
  while true do
    p = string.find(body, '"distanceMeters"', p, true)
    if not p then break end
    results = results + 1
    p = p + 16
  end
end
"""


def _lua_long_string(text: str) -> str:
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_wrk_scripts(directory: Path, bodies: list[str]) -> tuple[Path, Path]:
    """The null-run script (`done` only; wrk GETs the URL's path) and the GraphQL script."""
    null_script = directory / "null.lua"
    null_script.write_text("-- generated by bench/geosearch.py: GET <url>, figures from done()\n" + WRK_LUA_COMMON)
    graphql_script = directory / "graphql.lua"
    graphql_script.write_text(
        "-- generated by bench/geosearch.py: POST /graphql cycling through the query points\n"
        f"THREADS = {WRK_THREADS}\nCHECK_EVERY = {WRK_CHECK_EVERY}\nBODIES = {{\n"
        + ",\n".join(_lua_long_string(b) for b in bodies)
        + "\n}\n" + WRK_LUA_GRAPHQL + WRK_LUA_COMMON
    )
    return null_script, graphql_script


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "wrk (unknown version)"


def wrk_command(url: str, script: Path, *, concurrency: int, seconds: int) -> list[str]:
    threads = max(1, min(WRK_THREADS, concurrency))
    return ["wrk", "-c", str(concurrency), "-t", str(threads), "-d", f"{seconds}s", "--timeout", "30s",
            "--latency", "-s", str(script), url]


def run_wrk_process(cmd: list[str], server_pid: int | None, out_path: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run wrk to completion; return CPU marks just after it started and just after it exited
    (wrk's own CPU from /proc/<pid>/stat, read while it is a zombie, before it is reaped) and its
    output."""
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def sample() -> dict[str, Any]:
        return {"t": time.perf_counter(), "loadgen": tree_cpu_seconds(proc.pid), "machine": machine_cpu(),
                "server": tree_cpu_seconds(server_pid) if server_pid else None}

    try:
        start = sample()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: /proc/<pid> remains
        end = sample()
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{text[-3000:]}")
    return start, end, text


def parse_wrk(text: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith(WRK_MARK + " "):
            key, _, value = line[len(WRK_MARK) + 1:].partition(" ")
            if key == "first_error":
                figures[key] = value
            else:
                figures[key] = float(value) if "." in value else int(value)
    if "requests" not in figures:
        raise RuntimeError(f"no {WRK_MARK} lines in wrk's output:\n{text[-3000:]}")
    return figures


async def run_wrk(
    name: str, url: str, script: Path, *, concurrency: int, warmup: float, duration: float,
    server_pid: int | None, graphql: bool,
) -> RunResult:
    """wrk with ``script`` against ``url``: once for ``warmup`` seconds (discarded), then for
    ``duration`` seconds (wrk takes whole seconds). Requests, errors and latencies come from wrk's
    ``done``; load-gen CPU is the wrk process's own."""
    out_path = script.with_suffix(".out")
    if warmup > 0:
        cmd = wrk_command(url, script, concurrency=concurrency, seconds=max(1, round(warmup)))
        await asyncio.to_thread(run_wrk_process, cmd, None, out_path)
    cmd = wrk_command(url, script, concurrency=concurrency, seconds=max(1, round(duration)))
    start, end, text = await asyncio.to_thread(run_wrk_process, cmd, server_pid, out_path)
    w = parse_wrk(text)
    w["command"] = " ".join(cmd)
    result = RunResult(name, client="wrk", wrk=w)
    socket_errors = w["errors_connect"] + w["errors_read"] + w["errors_write"] + w["errors_timeout"]
    result.requests = w["requests"]
    result.errors = socket_errors + w["errors_status"] + (w["graphql_errors"] if graphql else 0)
    result.seconds = w["duration_us"] / 1e6
    result.throughput = result.requests / result.seconds if result.seconds else 0.0
    result.p50_ms, result.p95_ms, result.p99_ms = (w[f"p{q}_us"] / 1000 for q in (50, 95, 99))
    result.max_ms = w["max_us"] / 1000
    result.mean_ms = w["mean_us"] / 1000
    if graphql and w["checked_ok"]:
        result.avg_results = w["results"] / w["checked_ok"]
    if socket_errors:
        result.first_errors.append(f"socket errors: connect {w['errors_connect']}, read {w['errors_read']}, "
                                   f"write {w['errors_write']}, timeout {w['errors_timeout']}")
    if w["errors_status"]:
        result.first_errors.append(f"{w['errors_status']} responses with HTTP status >= 400")
    if graphql and w["graphql_errors"]:
        result.first_errors.append(f"{w['graphql_errors']} of {w['checked']} checked bodies with GraphQL errors; "
                                   f"first: {w.get('first_error', '')}")
    wall = end["t"] - start["t"]
    result.loadgen_cpu_cores = (end["loadgen"] - start["loadgen"]) / wall
    if start["server"] is not None:
        result.server_cpu_cores = (end["server"] - start["server"]) / wall
    result.machine_busy_cores, result.steal_cores = machine_cores(start["machine"], end["machine"])
    return result


# --------------------------------------------------------------------------------------------
# The API server
# --------------------------------------------------------------------------------------------


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def server_env(port: int) -> dict[str, str]:
    """This process's environment plus the dev stack's ODIM_* settings, served on ``port``."""
    s = get_settings()
    env = dict(os.environ)
    env.update(
        ODIM_ENVIRONMENT=s.environment,
        ODIM_DATABASE_URL=s.database_url,
        ODIM_REDIS_URL=s.redis_url,
        ODIM_PORT=str(port),
        ODIM_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        # Every benchmark client is 127.0.0.1 (and a few accounts): the abuse limits would
        # answer most requests with 429 and measure the limiter instead of the API.
        ODIM_RATE_LIMIT_PUBLIC="1000000/minute",
        ODIM_RATE_LIMIT_PURCHASE="1000000/minute",
    )
    return env


def start_server(port: int, log_path: Path, workers: int = 1) -> subprocess.Popen:
    cmd = ["uv", "run", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]
    # Own process group, so stop_server reaches uv's child (uvicorn) too. The child keeps its own
    # copy of the log file descriptor.
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=server_env(port), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    else:
        # uv is gone; make sure nothing it started is left in the group.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


async def wait_ready(base_url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> float:
    """Poll /healthz until 200, then require /readyz 200 (PostgreSQL and Redis reachable).
    Returns seconds taken. Raises RuntimeError (with the server's log) on exit or timeout."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"server not healthy after {timeout} s:\n{log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.2)
        ready = await client.get("/readyz")
        if ready.status_code != 200:
            raise RuntimeError(f"/readyz answered {ready.status_code}: {ready.text}")
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Seeding and data facts
# --------------------------------------------------------------------------------------------


async def odim(*args: str) -> None:
    """Run ``uv run odim <args>`` in the project (raises CalledProcessError on failure)."""
    await asyncio.to_thread(subprocess.run, ["uv", "run", "odim", *args], cwd=PROJECT_ROOT, check=True)


async def ensure_database() -> None:
    """Reach PostgreSQL; when it is down or unmigrated, run ``odim services up`` / ``odim migrate``."""
    try:
        conn = await asyncpg.connect(seed_module.asyncpg_dsn(), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[yellow]PostgreSQL not reachable ({type(exc).__name__}); starting the dev stack[/yellow]")
        await odim("services", "up")
        await odim("migrate")
        return
    try:
        migrated = await conn.fetchval("SELECT to_regclass('public.providers') IS NOT NULL")
    finally:
        await conn.close()
    if not migrated:
        console.print("[yellow]no providers table; running migrations[/yellow]")
        await odim("migrate")


async def seed(target: int) -> dict[str, Any]:
    """Demo data when the catalogue is empty, bulk providers up to ``target`` rows, ANALYZE."""
    info: dict[str, Any] = {"demo_seeded": False, "bulk_rows": 0, "bulk_seconds": 0.0}
    conn = await asyncpg.connect(seed_module.asyncpg_dsn())
    try:
        services = await conn.fetchval("SELECT count(*) FROM services")
    finally:
        await conn.close()
    if services == 0:
        started = time.perf_counter()
        summary = await seed_module.seed_demo()
        info["demo_seeded"] = not summary.get("skipped")
        info["demo_seconds"] = time.perf_counter() - started
        console.print(f"demo marketplace seeded in {info['demo_seconds']:.1f} s: {summary.get('counts')}")
    count = await seed_module.provider_count()
    missing = target - count
    if missing > 0:
        console.print(f"{count:,} providers; adding {missing:,} with COPY")
        started = time.perf_counter()
        with Progress(TextColumn("bulk providers"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("copy", total=missing)
            await seed_module.seed_bulk_providers(
                missing, progress=lambda done, total: progress.update(task, completed=done)
            )
        info["bulk_rows"] = missing
        info["bulk_seconds"] = time.perf_counter() - started
        console.print(f"seeded {missing:,} providers in {info['bulk_seconds']:.1f} s "
                      f"({missing / info['bulk_seconds']:,.0f} rows/s, COPY + ANALYZE)")
    else:
        console.print(f"{count:,} providers already (>= {target:,}); no bulk seed")
    started = time.perf_counter()
    conn = await asyncpg.connect(seed_module.asyncpg_dsn())
    try:
        await conn.execute("ANALYZE providers")
    finally:
        await conn.close()
    info["analyze_seconds"] = time.perf_counter() - started
    return info


async def data_facts(conn: asyncpg.Connection) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT count(*) AS providers,"
        " count(*) FILTER (WHERE verified AND available AND NOT suspended) AS live,"
        " count(*) FILTER (WHERE verified AND available AND NOT suspended AND $1::text = ANY (categories))"
        "   AS live_in_category"
        " FROM providers", CATEGORY,
    )
    return {
        "providers": row["providers"], "live_providers": row["live"],
        f"live_{CATEGORY}_providers": row["live_in_category"],
        "table_size": await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('providers'))"),
        "live_index_size": await conn.fetchval(
            "SELECT pg_size_pretty(pg_relation_size('ix_providers_location_live'))"),
        "postgresql": await conn.fetchval("SHOW server_version"),
        "postgis": await conn.fetchval("SELECT postgis_lib_version()"),
        "shared_buffers": await conn.fetchval("SHOW shared_buffers"),
    }


def graphql_payload(p: QueryPoint, radius_km: float) -> dict[str, Any]:
    """The GraphQL request body for one query point (the httpx client and the wrk script send it)."""
    return {
        "query": GRAPHQL_QUERY,
        "variables": {"near": {"latitude": p.latitude, "longitude": p.longitude},
                      "radiusKm": radius_km, "category": p.category, "first": FIRST},
    }


def sql_params(p: QueryPoint, radius_m: float) -> tuple:
    """NEARBY_SQL's parameters exactly as domain.provider.providers_nearby passes them."""
    return (GeoPoint(p.latitude, p.longitude).ewkt(), float(radius_m), p.category, None, None, FIRST + 1)


async def explain(conn: asyncpg.Connection, p: QueryPoint, radius_m: float) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of one query as a pooled connection runs it: a named prepared
    statement executed 6 times first, so PostgreSQL's plan cache has made its custom/generic choice
    (asyncpg prepares every statement). When that choice is the generic plan, the custom plan for
    the same values is returned too, for comparison."""
    await conn.execute(f"PREPARE bench_nearby AS {NEARBY_SQL}")
    try:
        ewkt, radius, category, _, _, limit = sql_params(p, radius_m)
        args = ", ".join([
            _literal(ewkt), repr(radius), _literal(category) if category else "NULL", "NULL", "NULL", str(limit),
        ])
        for _ in range(6):
            await conn.execute(f"EXECUTE bench_nearby({args})")
        out = {"plan": "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_nearby({args})"))}
        generic = await conn.fetchval("SELECT generic_plans FROM pg_prepared_statements WHERE name = 'bench_nearby'")
        out["kind"] = "generic" if generic else "custom"
        if generic:
            await conn.execute("SET plan_cache_mode = force_custom_plan")
            try:
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_nearby({args})")
            finally:
                await conn.execute("RESET plan_cache_mode")
            out["custom_plan"] = "\n".join(r[0] for r in rows)
        return out
    finally:
        await conn.execute("DEALLOCATE bench_nearby")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions = {}
    for pkg in ("httpx", "asyncpg", "uvicorn", "starlette", "strawberry-graphql", "sqlalchemy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "nproc": nproc, "cpu_model": model, "memory": mem, "kernel": platform.release(),
        "python": platform.python_version(), "loadavg_at_start": list(os.getloadavg()), "packages": versions,
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def decode_global_id(gid: str) -> int:
    _kind, _, raw = base64.b64decode(gid).decode().partition(":")
    return int(raw)


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.environment == "test":
        console.print("[red]ODIM_ENVIRONMENT=test: the test stack truncates tables before every test; "
                      "run the benchmark on the development stack (unset the ODIM_* test variables)[/red]")
        return 2
    db_url = httpx.URL(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    console.rule("[bold]Odim geosearch benchmark")
    console.print(f"database: {db_url.host}:{db_url.port}{db_url.path}   API: 127.0.0.1:{args.port} "
                  f"(uvicorn --workers {args.server_workers})")
    machine = machine_info()
    if args.client is None:
        args.client = "wrk" if shutil.which("wrk") else "httpx"
        if args.client == "httpx":
            console.print("[yellow]warning: wrk is not installed (apt-get install wrk; `make bench` installs it): "
                          "the HTTP runs use the httpx load generator in this process, which on a small machine "
                          "is itself the bottleneck[/yellow]")
    elif args.client == "wrk" and not shutil.which("wrk"):
        console.print("[red]--client wrk: no wrk binary on PATH (apt-get install wrk)[/red]")
        return 2
    machine["load_generator"] = wrk_version() if args.client == "wrk" else f"httpx {machine['packages']['httpx']}"
    console.print(f"HTTP load generator: {escape(machine['load_generator'])}")
    radius_m = args.radius_km * 1000.0
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    await ensure_database()
    seed_info: dict[str, Any] = {"skipped": True}
    try:
        if not args.no_seed:
            seed_info = await seed(args.providers)
    finally:
        await dispose_engine()

    points = query_points(QUERY_POINTS, args.category_mix)
    pool = await asyncpg.create_pool(seed_module.asyncpg_dsn(), min_size=args.concurrency,
                                     max_size=args.concurrency, server_settings=SERVER_SETTINGS)
    assert pool is not None
    async with pool.acquire() as conn:
        facts = await data_facts(conn)
    if facts["live_providers"] == 0:
        console.print("[red]no live providers: seed first (drop --no-seed)[/red]")
        await pool.close()
        return 2
    console.print(f"providers: {facts['providers']:,} ({facts['live_providers']:,} live, "
                  f"{facts[f'live_{CATEGORY}_providers']:,} live {CATEGORY}); query points: {len(points):,} "
                  f"near {len(seed_module.seed_cities())} cities, radius {args.radius_km:g} km, "
                  f"{args.category_mix:.0%} with category={CATEGORY!r}, first={FIRST}")

    if port_in_use(args.port):
        console.print(f"[red]port {args.port} is already in use: pick another with --port[/red]")
        await pool.close()
        return 2
    base_url = f"http://127.0.0.1:{args.port}"
    log_path = Path(tempfile.gettempdir()) / f"odim-bench-server-{args.port}.log"
    runs: list[RunResult] = []
    consistency: dict[str, Any] = {}
    proc = start_server(args.port, log_path, args.server_workers)
    workdir = tempfile.TemporaryDirectory(prefix="odim-bench-wrk-")
    try:
        startup = await wait_ready(base_url, proc, log_path)
        console.print(f"API started in {startup:.1f} s (pid {proc.pid}; log {log_path})")
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency,
                              keepalive_expiry=60)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, http1=True, http2=False,
                                     timeout=httpx.Timeout(30.0)) as client:

            async def graphql(p: QueryPoint) -> httpx.Response:
                return await client.post("/graphql", json=graphql_payload(p, args.radius_km))

            # Same providers, same order, over both paths (first 20 points).
            mismatches = []
            for p in points[:20]:
                body = (await graphql(p)).json()
                if body.get("errors"):
                    raise RuntimeError(f"GraphQL errors: {body['errors']}")
                http_ids = [decode_global_id(e["node"]["provider"]["id"])
                            for e in body["data"]["providersNearby"]["edges"]]
                sql_ids = [r["id"] for r in (await pool.fetch(NEARBY_SQL, *sql_params(p, radius_m)))[:FIRST]]
                if http_ids != sql_ids:
                    mismatches.append({"point": asdict(p), "http": http_ids, "sql": sql_ids})
            consistency = {"checked": 20, "mismatches": len(mismatches), "examples": mismatches[:2]}
            console.print(f"consistency: HTTP and SQL return the same providers in the same order for "
                          f"{20 - len(mismatches)}/20 points")

            async def null_op(i: int):
                r = await client.get("/healthz")
                return r.status_code == 200, None, None if r.status_code == 200 else f"HTTP {r.status_code}"

            async def http_op(i: int):
                r = await graphql(points[i % len(points)])
                if r.status_code != 200:
                    return False, None, f"HTTP {r.status_code}: {r.text[:200]}"
                body = r.json()
                if body.get("errors"):
                    return False, None, json.dumps(body["errors"])[:300]
                edges = body["data"]["providersNearby"]["edges"]
                return True, len(edges), None

            common = {"concurrency": args.concurrency, "warmup": args.warmup, "duration": args.duration,
                      "requests": args.requests, "server_pid": proc.pid}
            phase = f"{args.warmup:g} s warm-up + " + (
                f"{args.requests:,} requests" if args.requests else f"{args.duration:g} s")
            if args.client == "httpx":
                console.print(f"[bold]1/3[/bold] null HTTP baseline (httpx): GET /healthz, {args.concurrency} "
                              f"clients, {phase}")
                runs.append(await run_load("HTTP null: GET /healthz", null_op, **common))
                console.print(f"[bold]2/3[/bold] HTTP GraphQL providersNearby (httpx), {args.concurrency} "
                              f"clients, {phase}")
                runs.append(await run_load("HTTP GraphQL", http_op, **common))

        if args.client == "wrk":
            bodies = [json.dumps(graphql_payload(p, args.radius_km), separators=(",", ":")) for p in points]
            null_script, graphql_script = write_wrk_scripts(Path(workdir.name), bodies)
            wrk_common = {"concurrency": args.concurrency, "warmup": args.warmup, "duration": args.duration,
                          "server_pid": proc.pid}
            wrk_phase = (f"{max(1, round(args.warmup))} s warm-up + " if args.warmup > 0 else "") + \
                f"{max(1, round(args.duration))} s"
            threads = max(1, min(WRK_THREADS, args.concurrency))
            console.print(f"[bold]1/3[/bold] null HTTP baseline (wrk -t {threads}): GET /healthz, "
                          f"{args.concurrency} connections, {wrk_phase}")
            runs.append(await run_wrk("HTTP null: GET /healthz", f"{base_url}/healthz", null_script,
                                      graphql=False, **wrk_common))
            console.print(f"[bold]2/3[/bold] HTTP GraphQL providersNearby (wrk -t {threads}, {len(bodies):,} "
                          f"bodies in turn), {args.concurrency} connections, {wrk_phase}")
            runs.append(await run_wrk("HTTP GraphQL", f"{base_url}/graphql", graphql_script,
                                      graphql=True, **wrk_common))
            phase = f"{args.warmup:g} s warm-up + {args.duration:g} s"

        async def sql_op(i: int):
            rows = await pool.fetch(NEARBY_SQL, *sql_params(points[i % len(points)], radius_m))
            return True, min(len(rows), FIRST), None

        console.print(f"[bold]3/3[/bold] direct SQL: NEARBY_SQL via asyncpg pool ({args.concurrency} connections, "
                      f"prepared), {args.concurrency} tasks, {phase}")
        runs.append(await run_load("SQL (asyncpg)", sql_op, **common))
    finally:
        stop_server(proc)
        workdir.cleanup()

    try:
        async with pool.acquire() as conn:
            plans = await explain(conn, points[0], radius_m)
    finally:
        await pool.close()

    null_run, http_run, sql_run = runs
    ratios = {
        "http_over_sql_throughput": http_run.throughput / sql_run.throughput if sql_run.throughput else None,
        "http_over_sql_p50": http_run.p50_ms / sql_run.p50_ms if sql_run.p50_ms else None,
        "graphql_over_null_throughput": http_run.throughput / null_run.throughput if null_run.throughput else None,
    }

    # ---------------------------------------------------------------- print
    console.rule("[bold]Results")
    table = Table(title=f"providersNearby, radius {args.radius_km:g} km, first {FIRST}, "
                        f"{args.concurrency} concurrent clients, HTTP load generator {args.client}, "
                        f"uvicorn --workers {args.server_workers}", title_justify="left")
    for col in ("run", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "avg results",
                "load-gen CPU", "server CPU", "machine busy", "steal"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        table.add_row(
            r.name, f"{r.requests:,}", f"{r.errors:,}", f"{r.throughput:,.0f}", f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.max_ms:.1f}",
            "-" if r.avg_results is None else f"{r.avg_results:.1f}",
            f"{r.loadgen_cpu_cores:.2f}", "-" if r.server_cpu_cores is None else f"{r.server_cpu_cores:.2f}",
            f"{r.machine_busy_cores:.2f}/{machine['nproc']}", f"{r.steal_cores:.2f}",
        )
    console.print(table)
    loadgen = ("the wrk process for the HTTP runs, this process for the SQL run" if args.client == "wrk"
               else "this process")
    console.print(f"CPU columns are cores in use during the measured window (load generator = {loadgen}; "
                  "server = uvicorn (all its workers) and its uv wrapper, idle during the SQL run; machine = "
                  "everything, PostgreSQL and other jobs included; steal = CPU the hypervisor gave to others while "
                  "this machine wanted it, a sign of a noisy host: compare runs with low steal).")
    if args.client == "wrk":
        w = http_run.wrk or {}
        console.print(f"wrk GraphQL bodies checked for '\"errors\"' (Lua response(), 1 in {WRK_CHECK_EVERY}): "
                      f"{w.get('checked', 0):,}, with errors: {w.get('graphql_errors', 0):,}; HTTP status >= 400: "
                      f"{w.get('errors_status', 0):,}; socket errors: "
                      f"{sum(w.get(k, 0) for k in ('errors_connect', 'errors_read', 'errors_write', 'errors_timeout')):,}")
    console.print(f"HTTP/SQL throughput: [bold]{ratios['http_over_sql_throughput']:.2f}[/bold]   "
                  f"HTTP/SQL p50: [bold]{ratios['http_over_sql_p50']:.2f}[/bold]   "
                  f"GraphQL/null-HTTP throughput: {ratios['graphql_over_null_throughput']:.2f}")
    for r in runs:
        if r.errors:
            console.print(f"[red]{r.name}: {r.errors} errors[/red], first: {r.first_errors}")

    console.rule("[bold]Setup")
    console.print(f"API: uvicorn --workers {args.server_workers}; HTTP load generator: "
                  f"{escape(machine['load_generator'])}"
                  + (f" (-c {args.concurrency} -t {max(1, min(WRK_THREADS, args.concurrency))}, Lua script, "
                     f"warm-up run discarded)" if args.client == "wrk" else
                     f" (one AsyncClient, {args.concurrency} asyncio tasks, in this process)"))
    console.print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, "
                  f"Linux {machine['kernel']}, Python {machine['python']}, load average at start "
                  f"{' '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    console.print("packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    console.print(f"PostgreSQL {facts['postgresql']}, PostGIS {facts['postgis']}, shared_buffers "
                  f"{facts['shared_buffers']}; providers table {facts['table_size']}, live GiST index "
                  f"{facts['live_index_size']}")
    console.print(f"providers: {facts['providers']:,}, live (verified, available, not suspended): "
                  f"{facts['live_providers']:,}; live {CATEGORY}: {facts[f'live_{CATEGORY}_providers']:,}")
    if seed_info.get("bulk_rows"):
        console.print(f"seed: {seed_info['bulk_rows']:,} providers in {seed_info['bulk_seconds']:.1f} s "
                      f"(COPY + ANALYZE){'; demo marketplace seeded first' if seed_info.get('demo_seeded') else ''}")
    console.print(f"queries: {len(points):,} points (random.Random(42)) within {POINT_SPREAD_M / 1000:g} km of "
                  f"{len(seed_module.seed_cities())} seeded cities drawn by population, radius "
                  f"{args.radius_km:g} km, {sum(p.category is not None for p in points) / len(points):.0%} "
                  f"with category={CATEGORY!r}, first={FIRST} (SQL LIMIT {FIRST + 1}); both runs walk the "
                  f"same sequence of points")
    console.print(f"avg results per query: HTTP {http_run.avg_results or 0:.1f}, SQL {sql_run.avg_results or 0:.1f}")

    p0 = points[0]
    console.rule(f"[bold]EXPLAIN (ANALYZE, BUFFERS), one query: {plans['kind']} plan of a prepared statement")
    console.print(f"point ({p0.latitude}, {p0.longitude}) near {p0.city}, radius {radius_m:g} m, category "
                  f"{p0.category!r}, limit {FIRST + 1}; the statement was executed 6 times first, as pooled "
                  f"connections do", markup=False)
    console.print(plans["plan"], markup=False, highlight=False, soft_wrap=True)
    uses_index = "ix_providers_location_live" in plans["plan"]
    console.print(f"uses ix_providers_location_live: {'[green]yes' if uses_index else '[red]NO'}[/]")
    if "custom_plan" in plans:
        console.rule("[bold]the same query, custom plan (plan_cache_mode = force_custom_plan), for comparison")
        console.print(plans["custom_plan"], markup=False, highlight=False, soft_wrap=True)

    console.rule("[bold]Notes")
    console.print(
        f"- This machine has {machine['nproc']} CPU(s): the load generator (this process), the API server and "
        "PostgreSQL share them, so the HTTP figures are a floor for the server, not its ceiling on a "
        "dedicated machine. Other jobs running at the same time add noise (see 'machine busy' and the load "
        "average).\n"
        "- The null baseline (GET /healthz, no GraphQL, no database) is what this load generator "
        f"({'wrk' if args.client == 'wrk' else 'httpx + asyncio, one process'}) and uvicorn manage together at "
        "this concurrency: GraphQL throughput cannot exceed it here.\n"
        f"- The SQL run is the same statement (domain.provider.NEARBY_SQL) with the same parameters and "
        f"session settings {SERVER_SETTINGS} as the API, one round trip per query, without HTTP, GraphQL, "
        "or the API's session/transaction handling.\n"
        "- Latency is measured by the client from send to "
        f"{'complete response (wrk)' if args.client == 'wrk' else 'parsed response'}, queueing included "
        f"({args.concurrency} requests in flight). Figures only: nothing is asserted."
    )

    # ---------------------------------------------------------------- JSON
    out = RESULTS_DIR / f"geosearch-{timestamp}.json"
    out.write_text(json.dumps({
        "timestamp": timestamp,
        "command": " ".join(["uv run python bench/geosearch.py", *sys.argv[1:]]),
        "options": vars(args),
        "machine": machine,
        "data": facts,
        "seed": seed_info,
        "queries": {"points": len(points), "rng_seed": 42, "spread_m": POINT_SPREAD_M,
                    "radius_km": args.radius_km, "category": CATEGORY, "category_mix": args.category_mix,
                    "first": FIRST},
        "consistency": consistency,
        "runs": {"null_http": asdict(null_run), "http_graphql": asdict(http_run), "sql": asdict(sql_run)},
        "ratios": ratios,
        "explain": {"point": asdict(p0), "uses_live_index": uses_index, **plans},
    }, indent=2))
    console.print(f"\nwritten {out.relative_to(PROJECT_ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--providers", type=int, default=1_000_000,
                        help="seed synthetic providers until the table has at least this many rows")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--requests", type=int, default=None,
                        help="measure this many requests per run instead of --duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients (and SQL pool size)")
    parser.add_argument("--radius-km", type=float, default=5.0, help="search radius, 0 < r <= 100")
    parser.add_argument("--category-mix", type=float, default=0.5,
                        help=f"share of queries filtered on category {CATEGORY!r} (0..1)")
    parser.add_argument("--port", type=int, default=8099, help="port for the API server this script starts")
    parser.add_argument("--no-seed", action="store_true", help="use the data as it is (no seed, no ANALYZE)")
    parser.add_argument("--client", choices=("wrk", "httpx"), default=None,
                        help="HTTP load generator (default: wrk when the wrk binary is on PATH, else httpx)")
    parser.add_argument("--server-workers", type=int, default=1, help="uvicorn --workers for the API server")
    args = parser.parse_args(argv)
    if not 0 < args.radius_km <= 100:
        parser.error("--radius-km must be in (0, 100]")
    if not 0 <= args.category_mix <= 1:
        parser.error("--category-mix must be in [0, 1]")
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.server_workers < 1:
        parser.error("--concurrency >= 1, --duration > 0, --warmup >= 0, --server-workers >= 1")
    if args.requests is not None:
        if args.client == "wrk":
            parser.error("--requests needs --client httpx (wrk runs for a duration)")
        args.client = "httpx"
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
