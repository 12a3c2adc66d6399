"""Who may produce an output when the store is an object store shared by many workers.

A local store serialises producers with ``flock``; an object store has no locks, but
it has exclusive creation (S3's ``If-None-Match: *``). A producer *claims* an output by
creating ``claims/<output id>/<n>`` exclusively, where ``n`` is one more than the
highest claim there, after checking that claim ``n - 1`` is not live: of many workers
racing for the same ``n``, exactly one wins and the others wait. The holder renews its
claim every ``lease / 4`` seconds and marks it released when done (committed or failed).

A claim that an observer has watched go unrenewed for a whole lease, measured on the
observer's own monotonic clock, belongs to a dead worker; a claim made by an earlier
try of the same task instance belongs to an attempt Airflow has given up on: either is
superseded by claim ``n + 1``, like a released one. Leases never compare one machine's
clock with another's: the holder's ``renewed`` timestamp is read only as a version (a
renewal changes it), so workers whose clocks disagree by hours still wait for each
other, and a newcomer waits one lease before taking over a claim it has not seen
renewed. Claims are
never deleted, so each number is created once: deleting them would let a slow taker
create a number that a live claim had already used, and hold the output beside it.
The record itself is also created exclusively, so even a holder that stalled past its
lease cannot commit twice.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from alamode_airflow._compat import ObjectStoragePath
from alamode_airflow.listing import child_names

#: Seconds a claim stays valid without renewal.
DEFAULT_LEASE_S = 60.0
_POLL_S = 1.0


@dataclass(frozen=True)
class Claimant:
    """The attempt that claims: ``owner`` is the task instance (dag, run, task),
    the same across its tries; ``attempt`` tells tries apart."""

    owner: str
    attempt: str
    host: str


@dataclass(frozen=True)
class Claim:
    number: int
    owner: str
    attempt: str
    host: str
    renewed: float
    lease_s: float
    released: bool = False

    def dumps(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


class Claims:
    """The claims on outputs under ``root / "claims"``."""

    def __init__(
        self,
        root: ObjectStoragePath,
        lease_s: float = DEFAULT_LEASE_S,
        presumed_dead: int | None = None,
    ) -> None:
        self.root = root / "claims"
        self.lease_s = lease_s
        # A claim number someone (the trigger a task waited in) already watched go
        # unrenewed for a lease: not waited for a second time.
        self.presumed_dead = presumed_dead
        # (output, number) -> (the renewal last seen, when it was first seen here)
        self._seen: dict[tuple[str, int], tuple[float, float]] = {}

    def live(self, output_id: str, claim: Claim) -> bool:
        """Held by an attempt that is, as far as this observer can tell, still
        running: not released, and renewed within its lease by this observer's clock."""
        if claim.released or claim.number == self.presumed_dead:
            return False
        now = time.monotonic()
        key = (output_id, claim.number)
        seen = self._seen.get(key)
        if seen is None or seen[0] != claim.renewed:
            self._seen[key] = (claim.renewed, now)
            return True
        return now - seen[1] <= claim.lease_s

    @contextlib.contextmanager
    def held(
        self,
        output_id: str,
        claimant: Claimant,
        wait: Callable[[Claim], None],
        busy: Callable[[Claim], None] | None = None,
    ) -> Iterator[Claim]:
        """Hold the claim on ``output_id`` (waiting while another live attempt holds
        it; ``wait`` is told each time), renewed in the background until released.
        ``busy`` is told of another attempt's live claim first, and may raise to wait
        elsewhere: a producer learns whether to wait and claims in one read."""
        claim = self._acquire(output_id, claimant, wait, busy)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(output_id, claim, stop), daemon=True, name="alamode-claim"
        )
        renewer.start()
        try:
            yield claim
        finally:
            stop.set()
            renewer.join()
            self._release(output_id, claim)

    def _acquire(
        self,
        output_id: str,
        claimant: Claimant,
        wait: Callable[[Claim], None],
        busy: Callable[[Claim], None] | None,
    ) -> Claim:
        told = None
        while True:
            mine, holder = self.try_claim(output_id, claimant)
            if mine is not None:
                return mine
            if holder is None:
                continue  # lost a race for a number, or a claim went meanwhile
            if busy is not None:
                busy(holder)
            if (holder.number, holder.attempt) != told:
                wait(holder)
                told = (holder.number, holder.attempt)
            time.sleep(_POLL_S)

    def try_claim(self, output_id: str, claimant: Claimant) -> tuple[Claim | None, Claim | None]:
        """One try: (our new claim, None), or (None, the live claim of another attempt
        that holds the output), or (None, None) after losing a race: try again."""
        numbers = self._numbers(output_id)
        if numbers:
            try:
                top = self._read(output_id, numbers[-1])
            except FileNotFoundError:
                return None, None  # listed but not readable yet
            if top is not None and self.live(output_id, top) and top.owner != claimant.owner:
                return None, top
        number = numbers[-1] + 1 if numbers else 0
        claim = Claim(number, **asdict(claimant), renewed=time.time(), lease_s=self.lease_s)
        return (claim if self._create(output_id, claim) else None), None

    def holder(self, output_id: str) -> Claim | None:
        """The live claim on ``output_id``, if any."""
        top = self.newest(output_id)
        return top if top is not None and self.live(output_id, top) else None

    def newest(self, output_id: str) -> Claim | None:
        """The newest claim on ``output_id``, live or not."""
        numbers = self._numbers(output_id)
        try:
            return self._read(output_id, numbers[-1]) if numbers else None
        except FileNotFoundError:
            return None

    def _create(self, output_id: str, claim: Claim) -> bool:
        path = self.root / output_id / str(claim.number)
        try:
            with path.open("xb") as handle:
                handle.write(claim.dumps())
        except FileExistsError:
            return False
        return True

    def _renew(self, output_id: str, claim: Claim, stop: threading.Event) -> None:
        path = self.root / output_id / str(claim.number)
        while not stop.wait(self.lease_s / 4):
            renewed = Claim(**{**asdict(claim), "renewed": time.time()})
            with contextlib.suppress(OSError):
                path.write_bytes(renewed.dumps())

    def _release(self, output_id: str, claim: Claim) -> None:
        released = Claim(**{**asdict(claim), "renewed": time.time(), "released": True})
        (self.root / output_id / str(claim.number)).write_bytes(released.dumps())

    def _numbers(self, output_id: str) -> list[int]:
        return sorted(int(name) for name in child_names(self.root / output_id) if name.isdigit())

    def _read(self, output_id: str, number: int) -> Claim | None:
        """The claim; None if its content is not a claim (not live, then), and
        FileNotFoundError if it was just released."""
        path = self.root / output_id / str(number)
        # One GET: reading through a file object checks the ETag between requests, and
        # fails if the holder renews or releases the claim meanwhile.
        data = read_whole(path.fs, path.path)
        try:
            return Claim(**json.loads(data))
        except (ValueError, TypeError):
            return None


def read_whole(fs, path: str) -> bytes:
    """An object's bytes in one GET: s3fs otherwise asks for the size first (a HEAD),
    to read large objects in parallel pieces; claims and records are small."""
    if hasattr(fs, "max_concurrency"):
        return fs.cat_file(path, max_concurrency=1)
    return fs.cat_file(path)
