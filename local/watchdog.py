"""Runs a command in this process's group and ends the whole group when the process that
started it is gone, however it went (Ctrl-C twice, SIGKILL, an OOM kill, a CI timeout).

    python local/watchdog.py PARENT_PID -- COMMAND [ARGS...]

Started as a session leader (start_new_session=True), so the command and everything it
starts (the emulator's bash wrapper and its java) share this group. Stopping the group
with SIGTERM stops the command too: the watchdog passes the signal on, waits a little,
then kills what is left. Linux tells us at once when the parent dies (PR_SET_PDEATHSIG);
elsewhere, and as a second guard, the parent is polled.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.2
# The emulator stops in about a second on SIGTERM; then it is killed.
GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: polling alone


def _end_group(child: subprocess.Popen) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)


def main() -> None:
    parent = int(sys.argv[1])
    assert sys.argv[2] == "--", "usage: watchdog.py PARENT_PID -- COMMAND..."
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _die_with_parent()
    child = subprocess.Popen(sys.argv[3:])
    while not stopping and os.getppid() == parent:
        code = child.poll()
        if code is not None:
            sys.exit(code)
        time.sleep(POLL_SECONDS)
    _end_group(child)


if __name__ == "__main__":
    main()
