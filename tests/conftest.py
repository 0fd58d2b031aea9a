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


@pytest.fixture(scope="session")
def emulator():
    with FirestoreEmulator(rules_path=ROOT / "firestore.rules") as emu:
        configure_environment(emu.address)
        yield emu


@pytest.fixture(scope="session")
def db(emulator):
    from google.cloud import firestore

    return firestore.Client(project=PROJECT_ID)


def pytest_report_header(config):
    return f"firestore project: {PROJECT_ID}; emulator started on demand (FIRESTORE_EMULATOR_HOST={os.environ.get('FIRESTORE_EMULATOR_HOST')})"


@pytest.fixture
def clean_and_conserved(emulator, db):
    """A cleared emulator before the test; after it, the whole ledger must replay to zero
    in every tier and agree with every wallet document. Autouse in integration and e2e."""
    from tests.money import assert_conserved

    emulator.clear()
    yield
    assert_conserved(db)


@pytest.fixture(scope="session")
def api(emulator):
    from tests.money import Api

    return Api(str(ROOT / "functions" / "main.py"))
