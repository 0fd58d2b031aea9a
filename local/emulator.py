"""The real Firestore emulator (the gcloud component), started and stopped as a child.

Used by `make dev` (local/stack.py) and by the test suite (tests/conftest.py). The
emulator script is a bash wrapper around a java child, so it runs in its own session
and is stopped by process group: nothing is left behind, not even the java.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ID = "demo-guild"
# The databases the project uses: the app's and the coins' (config.COINS_DATABASE_DEFAULT).
DATABASES = ("(default)", "guild-coins")
WATCHDOG = Path(__file__).resolve().parent / "watchdog.py"
# Measured start is about 1.5 s; a loaded CI machine gets twenty times that, and more.
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
# Locks of transactions in flight expire after the emulator's 2 s lock timeout.
CLEAR_TIMEOUT_SECONDS = 10.0

HOW_TO_GET_IT = (
    "The Firestore emulator needs Java (17+) and the gcloud component "
    "'cloud-firestore-emulator'. Install one of: the Debian package "
    "google-cloud-cli-firestore-emulator (with openjdk-17-jre-headless), "
    "or `gcloud components install cloud-firestore-emulator`. "
    "Or point FIRESTORE_EMULATOR_BIN at the cloud_firestore_emulator script or the jar."
)


class EmulatorNotFound(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sdk_root() -> Path | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    # `gcloud info` takes seconds; the SDK root is where the resolved binary lives.
    resolved = Path(gcloud).resolve()
    for parent in resolved.parents:
        if (parent / "platform").is_dir():
            return parent
    return None


def find_command() -> list[str]:
    """Returns the argv prefix that runs the emulator, or raises with how to get it."""
    if shutil.which("java") is None:
        raise EmulatorNotFound("java was not found on PATH. " + HOW_TO_GET_IT)
    candidates: list[Path] = []
    if os.environ.get("FIRESTORE_EMULATOR_BIN"):
        candidates.append(Path(os.environ["FIRESTORE_EMULATOR_BIN"]))
    sdk = _sdk_root()
    if sdk is not None:
        candidates.append(sdk / "platform/cloud-firestore-emulator/cloud_firestore_emulator")
    candidates.append(Path("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"))
    candidates.extend(sorted(Path.home().glob(".cache/firebase/emulators/cloud-firestore-emulator-*.jar")))
    for path in candidates:
        if path.is_file():
            return ["java", "-jar", str(path)] if path.suffix == ".jar" else [str(path)]
    raise EmulatorNotFound("The Firestore emulator was not found. " + HOW_TO_GET_IT)


class FirestoreEmulator:
    """One emulator process on 127.0.0.1; `with FirestoreEmulator(...) as emu:`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        rules_path: Path | None = None,
        functions_emulator: str | None = None,
        project_id: str = PROJECT_ID,
        log_path: Path | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.rules_path = rules_path
        self.functions_emulator = functions_emulator
        self.project_id = project_id
        self.log_path = log_path
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> "FirestoreEmulator":
        argv = find_command() + [
            "start",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--project_id={self.project_id}",
        ]
        if self.rules_path is not None:
            argv.append(f"--rules={self.rules_path.resolve()}")
        if self.functions_emulator is not None:
            argv.append(f"--functions_emulator={self.functions_emulator}")
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        watched = [sys.executable, str(WATCHDOG), str(os.getpid()), "--", *argv]
        self._process = subprocess.Popen(
            watched, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise EmulatorNotFound(
                    f"The Firestore emulator exited with code {self._process.returncode} at start "
                    f"(see {self.log_path or 'its output'}). " + HOW_TO_GET_IT
                )
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"The Firestore emulator did not answer on {self.url} within {START_TIMEOUT_SECONDS} s")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=1) as response:
                return response.read().strip() == b"Ok"
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def __enter__(self) -> "FirestoreEmulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # The emulator's own admin API.

    def _request(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def clear(self, databases: tuple[str, ...] = DATABASES) -> None:
        """Deletes every document of these databases; rules and trigger registrations
        survive. The emulator refuses (409) while a transaction holds locks, so this
        waits a little for them."""
        deadline = time.monotonic() + CLEAR_TIMEOUT_SECONDS
        for database in databases:
            while True:
                try:
                    self._request("DELETE", f"/emulator/v1/projects/{self.project_id}/databases/{database}/documents")
                    break
                except urllib.error.HTTPError as error:
                    if error.code != 409 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    def register_trigger(self, trigger_id: str, event_type: str, document_pattern: str, database: str) -> None:
        """Asks the emulator to deliver document events of `database` to the functions
        emulator address."""
        body = {
            "eventType": event_type,
            "database": database,
            "namespace": "(default)",
            "document": {"value": document_pattern, "matchType": "PATH_PATTERN"},
        }
        self._request("POST", f"/emulator/v1/projects/{self.project_id}/eventarcTrigger?eventarcTriggerId={trigger_id}", body)
