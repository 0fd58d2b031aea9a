"""The local stack as a subprocess, for the tiers that drive it over HTTP (e2e, browser):
started like `make dev` on free ports, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from local.emulator import free_port
from tests.conftest import ROOT

READY_TIMEOUT_SECONDS = 60


def start_stack(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "--expo-port", str(free_port()), "--sadad-port", str(free_port()), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.strip() == "ready":
            # Keep reading what the stack logs (a line per request): a full pipe would
            # block its threads, and its exit, on writing to stdout.
            threading.Thread(target=lambda: lines.extend(line.rstrip() for line in process.stdout), daemon=True).start()
            return process, lines
    process.kill()
    raise AssertionError("the stack never said ready:\n" + "\n".join(lines))


def stop_stack(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)
