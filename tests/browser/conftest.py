"""The browser tier: the operators' console in a real Chromium (Debian's, driven by
Playwright) against the local stack as a subprocess, with its own emulator. Every test
leaves a screenshot of where it ended in test-artifacts/browser/ (not committed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from local.emulator import free_port
from local.tokens import mint
from tests.conftest import ROOT
from tests.stack import start_stack, stop_stack

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Stack:
    def __init__(self, base: str, firestore: str) -> None:
        self.base, self.firestore = base, firestore

    def call(self, method, path, uid, *, admin=False, body=None, key=None):
        headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}"}
        if key:
            headers["Idempotency-Key"] = key
        return requests.request(method, self.base + path, json=body, headers=headers, timeout=30)


@pytest.fixture(scope="session")
def stack():
    port, firestore_port = free_port(), free_port()
    process, _ = start_stack("--port", str(port), "--firestore-port", str(firestore_port), "--fatora-port", str(free_port()))
    yield Stack(f"http://127.0.0.1:{port}", f"127.0.0.1:{firestore_port}")
    assert stop_stack(process) == 0


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def refused():
    """What the page's Content-Security-Policy refused (Chromium says so in the console).
    The policy binds the tests too: Playwright's waits that evaluate a string in the page
    (wait_for_function) are eval, which it refuses; wait on locators instead."""
    return []


@pytest.fixture
def page(browser, request, refused):
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert refused == [], "the console's own policy refused something it does"


def sign_in(page, stack, uid="ops", admin=True):
    page.goto(stack.base + "/admin/")
    page.fill("#sign-in-local input[name=uid]", uid)
    if not admin:
        page.uncheck("#sign-in-local input[name=admin]")
    page.click("#sign-in-local button[type=submit]")


Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
