"""Push notifications through Expo's push service (the app registers Expo push tokens),
with Expo's own SDK (`exponent-server-sdk`): messages go out in batches of at most 100,
and each ticket says how its message fared.

A push is a courtesy on top of the notification document: it never fails the caller.
A token Expo reports as `DeviceNotRegistered` is returned so that it can be marked
inactive where the app keeps it; every other failure is logged. Delivery receipts
(`getReceipts`, about 15 minutes later) are not checked: a DeviceNotRegistered that only
a receipt reveals is caught on the next push to that token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import logs

# Expo: "the total notification payload must be at most 4096 bytes"; texts are cut well below.
TITLE_LENGTH_MAX = 100
BODY_LENGTH_MAX = 500
# A slow push service must not hold the trigger for long.
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Message:
    token: str
    title: str
    body: str
    data: Mapping[str, Any] = field(default_factory=dict)


class ExpoPush:
    def __init__(self, host: str, access_token: str | None = None, session=None) -> None:
        self.host = host.rstrip("/")
        self.access_token = access_token
        self._session = session

    def send(self, messages: list[Message]) -> list[str]:
        """Sends the messages; returns the tokens Expo says are no longer registered."""
        if not messages:
            return []
        import requests
        from exponent_server_sdk import DeviceNotRegisteredError, PushClient, PushMessage, PushServerError, PushTicketError

        session = self._session or requests.Session()
        session.headers.update({"accept": "application/json", "content-type": "application/json"})
        if self.access_token:
            session.headers["Authorization"] = f"Bearer {self.access_token}"
        client = PushClient(host=self.host, session=session, timeout=TIMEOUT_SECONDS)
        payloads = [
            PushMessage(
                to=m.token,
                title=m.title[:TITLE_LENGTH_MAX],
                body=m.body[:BODY_LENGTH_MAX],
                data=dict(m.data),
                sound="default",
                ttl=None,
                expiration=None,
                priority="high",
                badge=None,
                category=None,
                display_in_foreground=None,
                channel_id=None,
                subtitle=None,
                mutable_content=None,
            )
            for m in messages
        ]
        try:
            tickets = client.publish_multiple(payloads)
        except PushServerError as error:
            logs.warning("expo refused the push request", error=error.message, errors=error.errors)
            return []
        except (requests.RequestException, ValueError) as error:
            logs.warning("expo push failed", error=type(error).__name__)
            return []
        unregistered = []
        for ticket in tickets:
            try:
                ticket.validate_response()
            except DeviceNotRegisteredError:
                unregistered.append(ticket.push_message.to)
            except PushTicketError as error:
                logs.warning("expo push ticket error", error=error.message, details=ticket.details)
        return unregistered
