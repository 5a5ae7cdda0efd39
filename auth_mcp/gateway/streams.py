"""How many requests one person may have open at one upstream at a time.

A stream (an SSE response, a GET stream, a slow tool call) holds a connection to the upstream
and one at the client; a person opening thousands would take the upstream's and this process's
capacity from everyone else. Counted per process: behind N replicas a person may hold up to N
times the limit, which bounds each replica all the same.
"""

from __future__ import annotations


class StreamLimit:
    def __init__(self, *, per_person: int) -> None:
        self._per_person = per_person
        self._open: dict[int, int] = {}

    def acquire(self, person: int) -> bool:
        """Count one more open request for `person`; False (and nothing counted) at the limit."""
        count = self._open.get(person, 0)
        if count >= self._per_person:
            return False
        self._open[person] = count + 1
        return True

    def release(self, person: int) -> None:
        count = self._open.get(person, 0) - 1
        if count > 0:
            self._open[person] = count
        else:
            self._open.pop(person, None)

    def open_for(self, person: int) -> int:
        return self._open.get(person, 0)
