"""What a payer's browser does on the way through a hosted payment, for the walk-through
and the end-to-end tests: open a page, submit the form that submits itself (our
checkout page, SADAD's callback page), press the button asked for on a page that has
several (SADAD's Pay or Decline), and stop at the first redirect (the app's deep link).

    python -m local.browser URL [--press Pay|Decline]
    python -m local.browser --form '{"action", "method", "fields"}' [--press ...]

prints where the browser was sent last (`guild://coins/purchase/<id>?status=paid`).
`--form` starts from a form to post (a purchase's `checkout`, as the app's WebView
posts it) rather than from a page to open.
"""

from __future__ import annotations

import argparse
import json
import sys
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

STEPS_MAX = 8
TIMEOUT_SECONDS = 30


class Form:
    def __init__(self, action: str, method: str) -> None:
        self.action, self.method = action, method
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []


class Page(HTMLParser):
    """The forms of a page and their buttons' words."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._in_button = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(Form(attrs.get("action") or "", (attrs.get("method") or "get").upper()))
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1].fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "button" and self.forms:
            self._in_button = True
            self.forms[-1].buttons.append("")

    def handle_endtag(self, tag):
        if tag == "button":
            self._in_button = False

    def handle_data(self, data):
        if self._in_button:
            self.forms[-1].buttons[-1] += data.strip()


def walk(url: str, press: str = "Pay", form: dict | None = None) -> str:
    """Follows the pages from `url` (or from posting `form`) until one redirects; returns
    where to."""
    if form is not None:
        answer = requests.request(
            form["method"], form["action"], data=form["fields"], allow_redirects=False, timeout=TIMEOUT_SECONDS
        )
    else:
        answer = requests.get(url, allow_redirects=False, timeout=TIMEOUT_SECONDS)
    for _ in range(STEPS_MAX):
        if answer.is_redirect:
            return answer.headers["Location"]
        if answer.status_code != 200:
            raise SystemExit(f"{answer.url}: HTTP {answer.status_code}: {answer.text[:300]}")
        forms = Page(answer.text).forms
        chosen = forms[0] if len(forms) == 1 else next((f for f in forms if press in f.buttons), None)
        if chosen is None:
            raise SystemExit(f"{answer.url}: no form to submit (buttons: {[b for f in forms for b in f.buttons]})")
        answer = requests.request(
            chosen.method, urljoin(answer.url, chosen.action), data=chosen.fields, allow_redirects=False, timeout=TIMEOUT_SECONDS
        )
    raise SystemExit(f"no redirect after {STEPS_MAX} pages")


def main() -> None:
    parser = argparse.ArgumentParser(description="a payer's browser through a hosted payment")
    parser.add_argument("url", nargs="?")
    parser.add_argument("--form", type=json.loads, help="a form to post first, as JSON {action, method, fields}")
    parser.add_argument("--press", default="Pay", help="the button to press where a page has several")
    args = parser.parse_args()
    if (args.url is None) == (args.form is None):
        parser.error("give a URL or --form")
    print(walk(args.url, args.press, args.form))


if __name__ == "__main__":
    sys.exit(main())
