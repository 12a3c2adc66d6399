"""Waiting for another worker's claim in the triggerer, not in a worker slot.

On an object store, a task whose output another attempt is producing defers to
``ClaimReleasedTrigger``; it fires once that output has a record, or once nobody holds
a live claim on it any more (released, or not renewed for a lease as this trigger
watched it), and the task resumes: it skips, or claims the output itself. The event
names a claim the trigger watched die, so the task does not wait for it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from alamode_airflow._compat import BaseTrigger, TriggerEvent
from alamode_airflow.claims import Claims
from alamode_airflow.store import OutputStore

POLL_S = 2.0


class ClaimReleasedTrigger(BaseTrigger):
    """Fires when a generation newer than ``seen_generation`` (None: any) of the output
    is committed, or when no live claim on it is left."""

    def __init__(
        self,
        root: str,
        conn_id: str | None,
        output_id: str,
        seen_generation: int | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__()
        self.root = root
        self.conn_id = conn_id
        self.output_id = output_id
        self.seen_generation = seen_generation
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "root": self.root,
                "conn_id": self.conn_id,
                "output_id": self.output_id,
                "seen_generation": self.seen_generation,
                "poll_s": self.poll_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        store = OutputStore(self.root, self.conn_id)
        # One observer for the whole wait: a claim is dead once it has gone unrenewed
        # for a lease as this trigger watched it.
        claims = Claims(store.root)
        while True:
            # The store's calls block (fsspec's sync API): keep the event loop free.
            event = await asyncio.to_thread(self._ready, store, claims)
            if event:
                yield TriggerEvent({"output_id": self.output_id, **event})
                return
            await asyncio.sleep(self.poll_s)

    def _ready(self, store: OutputStore, claims: Claims) -> dict[str, Any] | None:
        """Why the waiting task can go on now, or None while the claim is live."""
        found = store.lookup(self.output_id)
        # A rebuild waits for a generation newer than the one it saw, not for any.
        seen = -1 if self.seen_generation is None else self.seen_generation
        if found.done and found.generation > seen:
            return {"reason": "committed"}
        top = claims.newest(self.output_id)
        if top is None or top.released:
            return {"reason": "released"}
        if not claims.live(self.output_id, top):
            return {"reason": "expired", "claim": top.number}
        return None
