"""A real uvicorn server process and raw graphql-transport-ws subscribers, for the live tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """``uvicorn server:app`` on the test stack's port with ``env`` overrides; ``start``, ``kill``
    (SIGKILL: a crash) and ``stop`` (SIGTERM)."""

    def __init__(self, **env: str) -> None:
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen | None = None
        self.base = get_settings().public_base_url

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(get_settings().port),
             "--log-level", "warning"], cwd=ROOT, env=self.env, start_new_session=True,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(600):  # up to a minute: importing the app takes 10+ s on a busy 2-core machine
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        self.kill()  # never leave a late starter holding the port for the next test
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def ws_url(self) -> str:
        return self.base.replace("http", "ws", 1) + "/graphql"


@dataclass
class Subscriber:
    """One socket with one subscription; ``frames`` are the messages received for it, in order."""

    server: Server
    query: str
    variables: dict
    token: str | None = None
    frames: list[dict] = field(default_factory=list)
    closed: int | None = None
    task: asyncio.Task | None = None

    async def run(self) -> None:
        try:
            async with websockets.connect(self.server.ws_url, subprotocols=["graphql-transport-ws"],
                                          origin=self.server.base) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"token": self.token} if self.token else {}}))
                ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert ack["type"] == "connection_ack", ack
                await ws.send(json.dumps({"id": "s1", "type": "subscribe",
                                          "payload": {"query": self.query, "variables": self.variables}}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    self.frames.append(message)
                    if message["type"] in ("error", "complete"):
                        return
        except websockets.ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd else -1

    def start(self) -> Subscriber:
        self.task = asyncio.create_task(self.run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def data(self, field_name: str) -> list[dict]:
        return [f["payload"]["data"][field_name] for f in self.frames if f["type"] == "next"]


async def wait_until(predicate, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")
