"""The one backoff rule for every retry loop (transactions, the gateway, timers)."""

from __future__ import annotations

import random


def delay_seconds(attempt: int, *, base_seconds: float, cap_seconds: float, floor: float = 0.0) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry): random
    between `floor` times and all of an exponentially growing, capped ceiling. `floor`
    0 is "full jitter", which spreads retriers that collided once the most; a queue
    that must visibly back off (the local Cloud Tasks stand-in) uses 0.5."""
    ceiling = min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1))
    return random.uniform(floor * ceiling, ceiling)
