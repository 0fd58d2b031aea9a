"""The language a person reads: English or Arabic, and the one rule that picks it (pure).

The app keeps its language on the phone today, so a user's language comes from two
places: the app's own field on its user document, once the app writes it (coins.app),
and the language of the user's own coin requests (their Accept-Language header),
remembered on their wallet by the transactions that write it anyway (coins.ledger).
`preferred` is the rule that chooses between them; everything that renders words for a
person (notices, pushes, receipts) asks it.
"""

from __future__ import annotations

import re

LANGUAGES = ("en", "ar")
DEFAULT = "en"
# The app sends one or two ranges ("ar-QA,ar;q=0.9,en;q=0.8" is 25 characters); a
# longer header is not worth reading range by range, so it names none of ours.
HEADER_LENGTH_MAX = 256

# RFC 9110, 12.5.4: language-range (RFC 4647's basic range: "*" or 1*8ALPHA *("-" 1*8alphanum)),
# and 12.4.2: qvalue, "0" to "1" with at most three decimals.
_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def from_header(accept_language: str | None) -> str | None:
    """The one of our languages an HTTP Accept-Language header prefers, or None when it
    names none of them ("fr", "*", an empty, malformed or overlong header). Ranges are
    weighed by their q (1 when absent; 0 means "not this one"), ties go to the one
    written first, and a range counts by its primary subtag ("ar-QA" is "ar"). A
    malformed range is skipped, the others still count. Never raises."""
    if not isinstance(accept_language, str) or len(accept_language) > HEADER_LENGTH_MAX:
        return None
    best, best_weight = None, 0.0
    for part in accept_language.split(","):
        tag, *parameters = (piece.strip(" \t") for piece in part.split(";"))
        weight = _weight(parameters)
        if weight is None or not _RANGE.fullmatch(tag):
            continue
        primary = tag.split("-", 1)[0].lower()
        if primary in LANGUAGES and weight > best_weight:
            best, best_weight = primary, weight
    return best


def _weight(parameters: list[str]) -> float | None:
    """A range's q: 1 without one, None when its parameters are not one `q=<qvalue>`."""
    if not parameters:
        return 1.0
    if len(parameters) != 1:
        return None
    name, equals, value = parameters[0].partition("=")
    if not equals or name.strip(" \t").lower() != "q" or not _QVALUE.fullmatch(value.strip(" \t")):
        return None
    return float(value)


def preferred(app_language: str | None, remembered: str | None) -> str:
    """The language a person reads: the app's own field when it names one of ours (what
    the user chose in the app), else the one their coin requests asked for last
    (remembered on their wallet), else English."""
    for language in (app_language, remembered):
        if isinstance(language, str) and language in LANGUAGES:
            return language
    return DEFAULT
