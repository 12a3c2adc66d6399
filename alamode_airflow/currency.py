"""Which outputs of a run are current: the one pass the plan task and ``status`` share.

An output is current when its newest generation is a success and every input's
current generation is the one its record says it read, holding the files it read
(``SuccessRecord.stale_reason``).
Tasks are assessed in topological order, so each input's verdict is known before its
readers' and the pass costs one lookup per output, none per input: an input that is
missing, stale or being rebuilt will be made again, so everything that read it is stale.
The lookups do not depend on each other, so they are all made first, in one call
(``OutputStore.lookup_all``): on an object store the outputs' folders are listed
together and their records read many at once, so the plan waits for about one round
trip per output divided by the workers, not for two per output in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from alamode_airflow.records import Made
from alamode_airflow.store import Lookup


@dataclass(frozen=True)
class Assessed:
    task: str
    output_id: str
    found: Lookup | None  # None: not looked up, the run rebuilds it
    stale: str | None = None  # why a recorded output is out of date

    @property
    def current(self) -> bool:
        return self.found is not None and self.found.done and self.stale is None


def assess(
    outputs: Mapping[str, str],
    inputs: Mapping[str, Iterable[str]],
    look_all: Callable[[list[str]], Mapping[str, Lookup]],
    rebuild: frozenset[str] = frozenset(),
    with_records: Callable[[Mapping[str, Lookup]], Mapping[str, Lookup]] | None = None,
) -> dict[str, Assessed]:
    """Each task of ``outputs`` (task -> output ID, in topological order), with
    ``inputs`` (task -> the tasks whose outputs it reads, as its records name them) and
    ``look_all`` (output IDs -> their lookups, e.g. ``store.lookup_all``; called once).
    Where ``look_all`` found an output by its receipt (``receipts``) and every input is
    current but not what the receipt says was read, the output is stale, and
    ``with_records`` (``store.with_records``: those lookups with their records, read
    at once) is asked why: the record names the input that changed."""
    lookups = look_all([oid for task, oid in outputs.items() if task not in rebuild])
    reads: dict[str, Made | None] = {}  # what a reader would read: None if remade
    result: dict[str, Assessed] = {}
    asked: dict[str, dict[str, Made | None]] = {}  # task -> the inputs it was judged by
    for task, output_id in outputs.items():
        if task in rebuild:
            result[task] = Assessed(task, output_id, None)
            reads[task] = None
            continue
        found = lookups[output_id]
        stale = None
        if found.done:
            now = {name: reads.get(name) for name in inputs.get(task, ())}
            stale = found.made.stale_reason(now)
            # An input being made again is reason enough; any other, only the record says.
            if stale and found.receipt and all(made is not None for made in now.values()):
                asked[task] = now
        result[task] = Assessed(task, output_id, found, stale)
        reads[task] = found.made if result[task].current else None
    if asked and with_records is not None:
        _say_why(result, asked, with_records)
    return result


def _say_why(
    result: dict[str, Assessed],
    asked: Mapping[str, Mapping[str, Made | None]],
    with_records: Callable[[Mapping[str, Lookup]], Mapping[str, Lookup]],
) -> None:
    """Give the receipts judged stale in ``result`` their records' reasons. The
    verdicts stand: a receipt's reads differ from its inputs' only where its record's
    do (the records are read after the pass, all at once, so none waits on another)."""
    told = with_records({result[task].output_id: result[task].found for task in asked})
    for task, now in asked.items():
        found = told[result[task].output_id]
        why = found.record.stale_reason(now) if found.done and found.record else None
        result[task] = replace(result[task], found=found, stale=why or result[task].stale)
