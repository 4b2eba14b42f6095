"""A small thread-safe store that keeps the most recently used values, for state every session of a server
shares."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class LruStore(Generic[V]):
    """At most `capacity` values by key, the least recently used dropped first; thread-safe (shared by every
    session of the server: the models of recent runs, the restorable state of recent tabs)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._values: collections.OrderedDict[str, V] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, value: V) -> None:
        """Keep `value` as the most recently used."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.capacity:
                self._values.popitem(last=False)

    def get(self, key: str, load: Callable[[], V] | None = None) -> V | None:
        """The value kept for `key`, else `load()` (kept from then on, pushing out the oldest), else None."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        if load is None:
            return None
        value = load()  # outside the lock: other keys stay usable while a checkpoint loads
        self.put(key, value)
        return value

    def discard(self, key: str) -> None:
        """Forget the value kept for `key` (a resumed run's folder holds a new model)."""
        with self._lock:
            self._values.pop(key, None)

    def ids(self) -> list[str]:
        """The keys kept, least recently used first."""
        with self._lock:
            return list(self._values)

    def clear(self) -> None:
        """Drop every value (a restarted process starts like this)."""
        with self._lock:
            self._values.clear()
