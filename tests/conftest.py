"""Shared test set-up. Unit tests need nothing; the `emulator` fixture starts one real
Firestore emulator per session (on free ports, with the real firestore.rules) for the
integration, e2e and rules tiers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from local.emulator import PROJECT_ID, FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402

LOCAL_SERVICE_SECRET = "tests-local-service-secret"
SERVICE_HEADERS = {"X-Local-Service-Secret": LOCAL_SERVICE_SECRET}


@pytest.fixture(scope="session")
def emulator():
    with FirestoreEmulator(rules_path=ROOT / "firestore.rules") as emu:
        configure_environment(emu.address)
        # Scheduler and task targets take this in place of an OIDC token, as in the stack.
        os.environ["LOCAL_SERVICE_SECRET"] = LOCAL_SERVICE_SECRET
        os.environ["ADMIN_UIDS"] = ",".join(ADMIN_UIDS)
        yield emu


ADMIN_UIDS = ("ops-one", "ops-two")


@pytest.fixture(scope="session")
def expo_session(emulator):
    from local.stack import start_expo_push

    expo = start_expo_push()
    yield expo
    expo.stop()


@pytest.fixture
def expo(expo_session):
    """The Expo push stand-in, emptied; the functions push to it."""
    expo_session.reset()
    return expo_session


@pytest.fixture(scope="session")
def db(emulator):
    """The coins database: what the services take, and what tests read directly."""
    from coins import clients
    from tests.money import Database

    return Database(clients.store().client)


def pytest_report_header(config):
    return f"firestore project: {PROJECT_ID}; emulator started on demand (FIRESTORE_EMULATOR_HOST={os.environ.get('FIRESTORE_EMULATOR_HOST')})"


@pytest.fixture(scope="session")
def conformance():
    """Every response checked against the OpenAPI document (tests/conformance.py)."""
    from coins import openapi
    from tests.conformance import Conformance, install

    checker = Conformance(openapi.build())
    install(checker)
    _checked.append(checker)
    return checker


_checked: list = []


def pytest_terminal_summary(terminalreporter):
    for checker in _checked:
        terminalreporter.write_line(f"conformance: {checker.checked} responses checked against docs/openapi.json")


@pytest.fixture
def clean_and_conserved(emulator, db, conformance):
    """A cleared emulator before the test; after it, every response it received must
    conform to the OpenAPI document, and the whole ledger must replay to zero in every
    tier and agree with every wallet document. Autouse in integration and e2e."""
    from tests.money import assert_conserved

    emulator.clear()
    conformance.take()
    yield
    problems = conformance.take()
    assert not problems, "responses that do not conform to docs/openapi.json:\n" + "\n".join(problems)
    assert_conserved(db)


@pytest.fixture(scope="session")
def api(emulator):
    from tests.money import Api

    return Api(str(ROOT / "functions" / "main.py"))


@pytest.fixture(scope="session")
def functions_server(emulator):
    """Every function over real HTTP (the gateway of the local stack), for callers that
    are other processes in production: Fatora's webhooks, Cloud Tasks."""
    from local.stack import serve_functions

    server = serve_functions(0)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def sandbox_session(functions_server):
    from local.stack import start_fatora_sandbox

    sandbox = start_fatora_sandbox(functions_server)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def fatora(sandbox_session):
    """The Fatora sandbox, with no faults and no orders, its webhooks going to the functions."""
    sandbox_session.reset()
    yield sandbox_session
    # Deliveries still in flight would land in the next test.
    sandbox_session.faults.webhooks_enabled = False
    sandbox_session.drain()


@pytest.fixture(scope="session")
def sadad_session(functions_server):
    from local.stack import start_sadad_sandbox

    sandbox = start_sadad_sandbox(functions_server, 0)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sadad(sadad_session):
    """The SADAD sandbox, with no faults and no orders, its webhooks going to the functions."""
    sadad_session.reset()
    yield sadad_session
    sadad_session.faults.webhooks_enabled = False
    sadad_session.drain()


@pytest.fixture(scope="session")
def task_queue(functions_server):
    """The escrow timers of this process: the local queue, delivering to the functions."""
    from local.stack import configure_tasks

    queue = configure_tasks(functions_server)
    yield queue
    queue.stop()
