"""The table of every deployable function, filled by the decorators that make one
(`coins.api.endpoint`, `coins.api.on_document_created`) as functions/main.py is
imported: its name, kind, declaration (path, access, models), trigger pattern,
schedule and resources. The OpenAPI document, the local gateway and stack, `make
deploy` and the tests that list functions all read it here; nothing reflects on main
or parses its source. Adding a scheduled job is one decorator:
`@endpoint("POST", access=Access.SERVICE, schedule=every(15))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import Spec

# The event of a document trigger: a document created (Eventarc, and the emulator).
DOCUMENT_CREATED = "google.cloud.firestore.document.v1.created"
# Where the schedules' clocks are: the marketplace's.
QATAR = "Asia/Qatar"


class Kind(StrEnum):
    PUBLIC = "public"  # HTTP, for the app, the console and the gateways
    PRIVATE = "private"  # HTTP, only for Cloud Scheduler and Cloud Tasks (OIDC)
    TRIGGER = "trigger"  # a Firestore document trigger on the coins database


@dataclass(frozen=True)
class Schedule:
    """When Cloud Scheduler calls a function: a cron line in a time zone."""

    cron: str
    time_zone: str = QATAR


def every(minutes: int) -> Schedule:
    """Every `minutes` minutes ("scheduled: every 15 minutes")."""
    assert 0 < minutes < 60 and 60 % minutes == 0, "a divisor of an hour"
    return Schedule(f"*/{minutes} * * * *")


def daily_at(hh_mm: str, time_zone: str = QATAR) -> Schedule:
    """Once a day at `hh_mm` ("daily at 02:30 Asia/Qatar")."""
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    assert 0 <= hours < 24 and 0 <= minutes < 60
    return Schedule(f"{minutes} {hours} * * *", time_zone)


def monthly_at(day: int, hh_mm: str, time_zone: str = QATAR) -> Schedule:
    """Once a month, on `day`, at `hh_mm` ("monthly on the 1st at 03:00 Asia/Qatar")."""
    assert 1 <= day <= 28, "a day every month has"
    daily = daily_at(hh_mm, time_zone)
    return Schedule(daily.cron.replace("* * *", f"{day} * *", 1), time_zone)


@dataclass(frozen=True)
class Resources:
    """What one instance gets. The defaults fit a request: Cloud Functions' 256 MiB and
    its 60 s timeout; what scans or calls a gateway many times says more."""

    memory: str = "256Mi"
    timeout_seconds: int = 60


@dataclass(frozen=True)
class Function:
    name: str
    kind: Kind
    spec: Spec | None = None  # an HTTP function's declaration
    document_pattern: str | None = None  # a trigger's documents (`ledger/{entryId}`)
    schedule: Schedule | None = None
    resources: Resources = Resources()


_TABLE: dict[str, Function] = {}


def record(function: Function) -> None:
    """Called by the decorators. functions_framework executes main.py again for each
    function it serves locally, so the same function may be recorded again: the same
    declaration, in the same place of the table."""
    _TABLE[function.name] = function


def functions() -> list[Function]:
    """Every function main.py declares, in the order it declares them."""
    import main  # noqa: F401 - importing main runs the decorators that fill the table

    return list(_TABLE.values())


def http_specs() -> list[Spec]:
    """The declarations of the HTTP functions."""
    return [function.spec for function in functions() if function.spec is not None]


def triggers() -> list[Function]:
    return [function for function in functions() if function.kind is Kind.TRIGGER]


def scheduled() -> list[Function]:
    return [function for function in functions() if function.schedule is not None]
