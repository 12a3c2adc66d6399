"""The store's promises under random sequences of commits, rebuilds, killed attempts,
lost data, pins and garbage collection, checked after every step against a model
(``store_model.py``), on a local root and on an S3 root (moto's server on loopback):

1. no record without its bytes: every generation read as done verifies against its
   manifest;
2. no committed byte ever changes, and nothing that should be held goes missing;
3. provenance: what ``currency.assess`` calls current read exactly each input's current
   generation (done), and every record's inputs still hold the bytes it was made from;
4. a superseded generation never becomes current again: the current generation is the
   newest committed, and after a loss the output is missing until the next one;
5. gc never removes a root, a pin, an output newer than its cut-off, what a live
   attempt holds, nor anything a record of what it keeps names; killed part way, it
   leaves no record naming what it took; left to finish, it takes everything else; and
   an output it took, built again, never reuses a generation number.

Producers act as the operator does: under the output's exclusive hold and the inputs'
shared locks, settle the output, look up the inputs, skip when current, else commit
``next_generation`` naming the inputs' generations. Airflow's ordering is a
precondition: a task runs only once its inputs are current.

gc (local roots only) runs on a dags folder of some of the tasks, with live attempts
holding locks, killed part way (the plan cut short), and with a cut-off between any two
commits; the examples at the end show the paths that once lost inputs.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from alamode_airflow import gc
from alamode_airflow.claims import Claimant
from alamode_airflow.manifests import remove
from alamode_airflow.store import Found, OutputStore
from loopback.servers import s3_server
from tests.unit import store_model as m

CONN_ID = "alamode_model_s3"
FILES = st.dictionaries(
    st.sampled_from(["out.bin", "sub/part.bin", "z"]), st.binary(max_size=8), min_size=1
)


class StoreMachine(RuleBasedStateMachine):
    """The rules and invariants every kind of root shares."""

    def __init__(self) -> None:
        super().__init__()
        self.model = m.Model()
        self.live: list[m.Live] = []
        self.runs = 0
        self.store = self.make_store()
        self._seen: m.Seen | None = None

    def make_store(self) -> OutputStore:
        raise NotImplementedError

    def teardown(self) -> None:
        for live in self.live:
            live.locks.close()

    # --- who may run now -------------------------------------------------------------------

    def held(self) -> tuple[set[str], set[str]]:
        """(tasks a live attempt produces, tasks a live attempt reads)."""
        return {a.name for a in self.live}, {n for a in self.live for n in m.INPUTS[a.name]}

    def unblocked(self) -> list[str]:
        """Tasks whose producer would not wait for a live attempt's locks."""
        producing, reading = self.held()
        return [
            name
            for name in m.TASKS
            if name not in producing | reading and not set(m.INPUTS[name]) & producing
        ]

    def runnable(self) -> list[str]:
        """Unblocked tasks whose inputs are current: what Airflow would run now."""
        return [name for name in self.unblocked() if self.model.inputs_current(name)]

    def losable(self) -> list[str]:
        producing, reading = self.held()
        return [
            name
            for name in m.TASKS
            if self.model.current[name] is not None and name not in producing | reading
        ]

    @contextlib.contextmanager
    def producing(self, name: str):
        """As the operator: hold the output (a claim on an object store), lock the inputs
        shared, settle the output and look the inputs up; yields (found, reads)."""
        self.runs += 1
        me = Claimant(owner=f"model/run-{self.runs}/{name}/-1", attempt="1", host="model")
        store = self.store
        with store.locked(m.OUTPUTS[name], claimant=me), contextlib.ExitStack() as reading:
            for input_name in m.INPUTS[name]:
                reading.enter_context(store.locked(m.OUTPUTS[input_name], shared=True))
            found = store.settle(m.OUTPUTS[name], m.unexpected)
            yield found, {n: store.lookup(m.OUTPUTS[n]) for n in m.INPUTS[name]}

    def produce(self, name, found, reads, files, staging=None) -> None:
        """Commit generation ``found.next_generation`` and tell the model."""
        self._seen = None
        assert found.next_generation == self.model.next_generation[name], (name, found)
        for input_name, now in reads.items():
            assert now.done, (input_name, now)
            assert now.generation == self.model.current[input_name].generation
        staging = staging or self.store.stage(m.OUTPUTS[name])
        tick = self.model.clock
        made = m.commit(self.store, staging, name, found, reads, files, m.at(tick).isoformat())
        read = {n: self.model.current[n] for n in reads}
        self.model.committed(m.Commit(name, made.generation, dict(files), read, tick))

    # --- rules ---------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Runnable tasks whose output is not current (a DAG run also runs the rest)."""
        return [name for name in self.runnable() if not self.model.is_current(name)]

    @precondition(lambda self: self.pending())
    @rule(data=st.data())
    def commit(self, data):
        """Run a task whose output is missing or stale: the next generation."""
        name = data.draw(st.sampled_from(self.pending()), label="task")
        files = data.draw(FILES, label="files")
        with self.producing(name) as (found, reads):
            if not self.is_skipped(name, found, reads):
                self.produce(name, found, reads, files)

    def is_skipped(self, name, found, reads) -> bool:
        """The operator's rule: skip when recorded and made from each input's current
        generation; the model must agree."""
        now = {n: f.record if f.done else None for n, f in reads.items()}
        skipped = found.done and found.record.stale_reason(now) is None
        assert skipped == self.model.is_current(name), (name, found, now)
        return skipped

    @precondition(lambda self: self.runnable())
    @rule(data=st.data())
    def rebuild(self, data):
        """Run the task with ``--rebuild``: a new generation even if current."""
        name = data.draw(st.sampled_from(self.runnable()), label="task")
        files = data.draw(FILES, label="files")
        with self.producing(name) as (found, reads):
            self.produce(name, found, reads, files)

    @rule(data=st.data())
    def run_dag(self, data):
        """A DAG run: each task in order, those in ``rebuild`` rebuilt; a task waits
        (is left out here) while a live attempt holds what it needs."""
        rebuild = data.draw(st.sets(st.sampled_from(m.TASKS), max_size=1), label="rebuild")
        for name in m.TASKS:
            if name in self.runnable():
                files = data.draw(FILES, label=f"files of {name}")
                with self.producing(name) as (found, reads):
                    if name in rebuild or not self.is_skipped(name, found, reads):
                        self.produce(name, found, reads, files)

    @precondition(lambda self: self.unblocked())
    @rule(data=st.data())
    def kill_mid_attempt(self, data):
        """A worker dies while writing: its staging folder stays behind (local); on an
        object store, part of its upload stays under its own attempt prefix."""
        name = data.draw(st.sampled_from(self.unblocked()), label="task")
        files = data.draw(FILES, label="files")
        self._seen = None
        with self.producing(name) as (found, _reads):
            staging = m.staged_partially(self.store, name, files)
            if not self.store.local:
                m.dead_upload(self.store, name, found.next_generation, b"partial")
                self.store.discard(staging)  # the dead worker's own disk

    @precondition(lambda self: self.losable())
    @rule(data=st.data())
    def lose_data(self, data):
        """The current generation's data vanishes; the next reader settles it."""
        name = data.draw(st.sampled_from(self.losable()), label="task")
        self._seen = None
        generation = m.lose(self.store, name)
        assert generation == self.model.current[name].generation
        warned = []
        found = self.store.settle(m.OUTPUTS[name], lambda *args: warned.append(args))
        assert len(warned) == 1, warned
        assert found.status is Found.MISSING, found
        assert found.next_generation == generation + 1, found
        self.model.lost(name)

    # --- invariants ----------------------------------------------------------------------

    def seen(self) -> m.Seen:
        if self._seen is None:
            self._seen = m.look(self.store)
        return self._seen

    @invariant()
    def no_record_without_its_bytes(self):
        for name, generations in self.seen().generations.items():
            for generation, (_found, _files, problems) in generations.items():
                assert problems == [], (name, generation, problems)

    @invariant()
    def committed_bytes_never_change(self):
        for name, generations in self.seen().generations.items():
            for generation, (_found, files, _problems) in generations.items():
                commit = self.model.held[name].get(generation)
                assert commit is not None, f"{name} generation {generation} is nobody's commit"
                assert files == commit.files, (name, generation)
            assert set(generations) == set(self.model.held[name]), f"{name} lost a generation"

    @invariant()
    def records_name_what_they_were_made_from(self):
        m.check_provenance(self.seen(), self.model)

    @invariant()
    def superseded_generations_never_come_back(self):
        for name, found in self.seen().lookups.items():
            commit = self.model.current[name]
            if commit is not None:
                assert found.done, (name, found)
                assert found.generation == commit.generation, (name, found)
            else:
                assert found.status is Found.MISSING, (name, found)
                assert found.next_generation == self.model.next_generation[name], (name, found)


class LocalMachine(StoreMachine):
    """A local root, with attempts that hold their locks across steps."""

    def make_store(self) -> OutputStore:
        self.folder = Path(tempfile.mkdtemp(prefix="alamode-model-"))
        return OutputStore(str(self.folder / "root"))

    def teardown(self) -> None:
        super().teardown()
        remove(self.folder)

    @precondition(lambda self: len(self.live) < 2 and self.runnable())
    @rule(data=st.data())
    def start_attempt(self, data):
        """A task starts and is still running (its locks held) when later steps run."""
        name = data.draw(st.sampled_from(self.runnable()), label="task")
        files = data.draw(FILES, label="files")
        locks = contextlib.ExitStack()
        found, reads = locks.enter_context(self.producing(name))
        staging = m.staged_partially(self.store, name, files)
        self.live.append(m.Live(name, locks, staging, found, reads, files))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def end_attempt(self, data):
        """A running task commits, or its command fails and the attempt is discarded."""
        live = self.live.pop(data.draw(st.integers(0, len(self.live) - 1), label="attempt"))
        succeeds = data.draw(st.booleans(), label="succeeds")
        with live.locks:
            if succeeds:
                self.produce(live.name, live.found, live.reads, live.files, live.staging)
            else:
                self.store.discard(live.staging)


class GcMachine(LocalMachine):
    """A local root with pins and garbage collection too."""

    dags_files = True  # the dags folder describes some tasks (else none: pins alone)
    cut_short = False  # gc killed part way, and cut-offs between commits

    @rule(name=st.sampled_from(m.TASKS))
    def pin(self, name):
        gc.pin(self.store, m.OUTPUTS[name])

    @rule(name=st.sampled_from(m.TASKS))
    def unpin(self, name):
        gc.unpin(self.store, m.OUTPUTS[name])

    @rule(
        files=st.sets(st.sampled_from(m.TASKS)),
        stop_after=st.none() | st.integers(0, 2),
        last=st.none() | st.integers(1, 4),
    )
    def collect_garbage(self, files, stop_after, last):
        """gc with the dags folder as it is now (``files``: the tasks its file holds,
        with what they read), killed after ``stop_after`` outputs unless None, keeping
        the ``last`` commits as newer than its cut-off unless None."""
        self._seen = None
        store, files = self.store, files if self.dags_files else set()
        stop_after, last = (stop_after, last) if self.cut_short else (None, None)
        roots = gc.roots(m.dags_folder(self.folder / "dags", files), any_folder=True)
        assert roots == {m.OUTPUTS[name] for name in m.ancestors(files)}
        in_use = {m.OUTPUTS[name] for name in set.union(*self.held())}
        recent = {m.OUTPUTS[name] for name in self.model.recent(last or 0)}
        kept = m.closure(store, roots | gc.pins(store) | in_use | recent)
        before = m.holding(store)
        chosen = gc.plan(store, roots, m.older_than(self.model.clock, last))
        outcome = gc.collect(store, m.killed(chosen, stop_after))
        assert all(live.staging.is_dir() for live in self.live)
        taken = m.check_collected(store, before, kept, whole=stop_after is None)
        assert taken == set(outcome.deleted), outcome
        assert set(outcome.busy) <= in_use, outcome
        for oid in taken:
            self.model.collected(m.TASK_OF[oid])


class GcPinMachine(GcMachine):
    """No encoded files: the pins alone, with their closures, are kept."""

    dags_files = False


class GcCutShortMachine(GcMachine):
    """gc killed part way, and cut-offs between commits."""

    cut_short = True


class S3Machine(StoreMachine):
    """An S3 root: each example its own prefix of the module's bucket."""

    def make_store(self) -> OutputStore:
        return OutputStore(f"s3://alamode-outputs/model/{uuid.uuid4().hex}", conn_id=CONN_ID)


LOCAL = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_a_local_store_keeps_its_promises():
    run_state_machine_as_test(LocalMachine, settings=LOCAL)


def test_gc_keeps_what_is_wanted():
    run_state_machine_as_test(GcMachine, settings=LOCAL)


def test_gc_keeps_every_output_a_pins_records_name():
    run_state_machine_as_test(GcPinMachine, settings=LOCAL)


def test_gc_never_lets_a_generation_mean_other_bytes():
    run_state_machine_as_test(GcCutShortMachine, settings=LOCAL)


def test_gc_older_than_keeps_what_recent_outputs_were_made_from(tmp_path):
    store = OutputStore(str(tmp_path / "root"))
    m.made_from_old_a(store)
    m.make(store, "e", b"old e", end=m.at(0).isoformat())
    chosen = gc.plan(store, set(), gc.parse_age("30d"))
    assert [c.output_id for c in chosen.reclaimable] == [m.OUTPUTS["e"]]
    assert gc.collect(store, chosen).deleted == [m.OUTPUTS["e"]]
    assert m.current(store) == {"a", "b"}


def test_a_gc_killed_part_way_leaves_no_record_naming_what_it_took(tmp_path):
    store = OutputStore(str(tmp_path / "root"))
    m.made_from_old_a(store)
    chosen = gc.plan(store, set(), timedelta(0))
    assert [c.output_id for c in chosen.reclaimable] == [m.OUTPUTS["b"], m.OUTPUTS["a"]]
    assert gc.collect(store, m.killed(chosen, 1)).deleted == [m.OUTPUTS["b"]]
    assert m.current(store) == {"a"}
    assert m.make(store, "b", b"b again").generation == 1  # never generation 0 again
    assert m.current(store) == {"a", "b"}


def test_gc_keeps_what_an_output_in_use_was_made_from(tmp_path):
    store = OutputStore(str(tmp_path / "root"))
    m.made_from_old_a(store)
    with store.locked(m.OUTPUTS["b"], shared=True):  # d's attempt is reading b
        outcome = gc.collect(store, gc.plan(store, set(), timedelta(0)))
    assert (outcome.deleted, outcome.busy) == ([], [m.OUTPUTS["b"]])
    assert [oid for oid, _why in outcome.spared] == [m.OUTPUTS["a"]]
    assert m.current(store) == {"a", "b"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("s3")) as running:
        yield running


def test_an_s3_store_keeps_its_promises(server, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection())
    run_state_machine_as_test(
        S3Machine,
        settings=settings(LOCAL, max_examples=8, stateful_step_count=10),
    )
