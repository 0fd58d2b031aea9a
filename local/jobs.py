"""Creates a job in the app's database of the local stack, as the GUILD app writes it
once the client accepted a freelancer's offer (src/services/jobService.ts), so that the
client can pay it. Its client and freelancer get a `users/{uid}` document with one Expo
push token each (`ExponentPushToken[local-<uid>]`, as the app registers a device), if
they have none, so that the Expo stand-in shows what they were pushed:

    make job id=job-1 client=alice freelancer=bob     (freelancer= left out: still open)
    python -m local.jobs job-1 alice [bob] [--firestore HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from typing import Any

from local.emulator import PROJECT_ID


def job_document(job_id: str, client: str, freelancer: str | None, now: datetime) -> dict[str, Any]:
    """The fields the app writes: an open job, and once an offer is accepted, the
    freelancer and the accepted offer."""
    data: dict[str, Any] = {
        "title": "Logo design",
        "description": "A logo for the shop",
        "category": "design",
        "budget": {"min": 100, "max": 500, "currency": "QAR"},
        "location": "Doha",
        "timeNeeded": "1 week",
        "skills": ["design"],
        "isUrgent": False,
        "status": "open",
        "adminStatus": "approved",
        "clientId": client,
        "clientName": client,
        "offers": [],
        "createdAt": now,
        "updatedAt": now,
    }
    if freelancer is not None:
        offer = {
            "id": f"offer-{job_id}",
            "jobId": job_id,
            "freelancerId": freelancer,
            "freelancerName": freelancer,
            "price": 100,
            "message": "I can do it",
            "status": "accepted",
            "createdAt": now,
        }
        data.update(status="accepted", freelancerId=freelancer, freelancerName=freelancer, acceptedOffer=offer, offers=[offer])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description="create a job in the local stack's app database")
    parser.add_argument("job_id")
    parser.add_argument("client")
    parser.add_argument("freelancer", nargs="?")
    parser.add_argument("--firestore", default=os.environ.get("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"))
    args = parser.parse_args()
    os.environ["FIRESTORE_EMULATOR_HOST"] = args.firestore
    from google.cloud import firestore

    app = firestore.Client(project=PROJECT_ID, database="(default)")
    now = datetime.now(timezone.utc)
    app.collection("jobs").document(args.job_id).set(job_document(args.job_id, args.client, args.freelancer, now))
    for uid in filter(None, (args.client, args.freelancer)):
        user = app.collection("users").document(uid)
        if not user.get().exists:
            # setDoc(..., {merge: true}) with a dotted key, as the app does: one top-level field.
            user.set(
                {
                    "displayName": uid,
                    "notificationTokens.local-device": {
                        "token": f"ExponentPushToken[local-{uid}]",
                        "platform": "ios",
                        "isActive": True,
                        "updatedAt": now,
                    },
                }
            )
    print(
        f"jobs/{args.job_id}: client {args.client}, "
        + (f"freelancer {args.freelancer}" if args.freelancer else "nobody hired yet")
    )


if __name__ == "__main__":
    main()
