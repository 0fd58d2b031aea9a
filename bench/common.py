"""What the benchmarks share: counting document reads and writes, and percentiles."""

from __future__ import annotations


class Counter:
    """Counts document reads and writes by wrapping the client library's calls."""

    def __init__(self) -> None:
        import threading

        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from google.cloud.firestore_v1 import document, transaction

        counter = self

        def wrap(cls, name, kind):
            original = getattr(cls, name)

            def counted(*args, **kwargs):
                with counter._lock:
                    setattr(counter, kind, getattr(counter, kind) + 1)
                return original(*args, **kwargs)

            setattr(cls, name, counted)

        wrap(document.DocumentReference, "get", "reads")
        wrap(document.DocumentReference, "create", "writes")
        wrap(transaction.Transaction, "set", "writes")

    def take(self) -> tuple[int, int]:
        counts = (self.reads, self.writes)
        self.reads = self.writes = 0
        return counts


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
