"""The engine's operators.

``AlamodeOperator`` owns ``execute()``: skip when the run's output is current (recorded,
and made from the current generation of every input; unless the run rebuilds it),
otherwise hold the output's lock and its inputs' shared locks, re-check, let
``produce`` write into a fresh staging folder, commit, and record success in the store
and in XCom. Subclasses override ``produce`` only. The plan task (``plan.py``) runs first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from a_la_mode import AlamodeError
from alamode_airflow._compat import AirflowSkipException, BaseOperator
from alamode_airflow.claims import Claim, Claimant
from alamode_airflow.links import OutputLocationLink
from alamode_airflow.manifests import OutputRefused, manifest
from alamode_airflow.openlineage import OpenLineageMixin
from alamode_airflow.records import SuccessRecord
from alamode_airflow.runner import Command, CommandFailed, InputModified, Invocation
from alamode_airflow.runs import RunInfo, interval_of, rebuilds_for
from alamode_airflow.store import Committed, Found, Lookup, OutputStore, look_up_all

RECORD_XCOM = "alamode_record"
PLAN_XCOM = "alamode_plan"
# The names a run was asked to rebuild, apart from the plan: small whatever the DAG's
# size, so that each task of a rebuild run reads them, not the whole plan.
REBUILD_XCOM = "alamode_rebuild_asked"
PLAN_TASK = "alamode_plan"


class AlamodeOperator(OpenLineageMixin, BaseOperator):
    """Produce one content-addressed output, at most once across all runs and DAGs."""

    ui_color = "#fdf1dc"
    operator_extra_links = (OutputLocationLink(),)
    # The preimage source and the ancestry read the immutable pipeline (and a
    # mappingproxy cannot be deep-copied).
    shallow_copy_attrs = ("preimage_source", "ancestry")

    def __init__(
        self,
        *,
        output_id: str,
        inputs: Mapping[str, str],
        preimage_source: Callable[[], bytes],
        cwd: str,
        partitioned: bool = False,
        partitioned_inputs: frozenset[str] = frozenset(),
        command: str = "",
        image: str | None = None,
        sha: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        storage_root: str | None = None,
        ancestry: Callable[[], set[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        # The one __init__ of the engine's operators, the command's arguments included:
        # Airflow wraps each class's own __init__ (``apply_defaults``: default_args
        # merged, the DAG's params deep-copied, again at every level), and a DAG file
        # builds one operator per task.
        super().__init__(**kwargs)
        # Straight into the instance: BaseOperator.__setattr__ looks up a converter for
        # every name and, once the operator is built, tracks template fields' XComArgs;
        # none of these names has a converter, and nothing is tracked before the end of
        # __init__ (where Airflow reads the template fields).
        vars(self).update(
            engine_attributes(
                output_id=output_id,
                inputs=inputs,
                preimage_source=preimage_source,
                cwd=cwd,
                partitioned=partitioned,
                partitioned_inputs=partitioned_inputs,
                command=command,
                image=image,
                sha=sha,
                env=env,
                timeout_s=timeout_s,
                storage_root=storage_root,
                ancestry=ancestry,
            )
        )

    def execute(self, context: Any, presumed_dead: int | None = None) -> None:
        from alamode_airflow.links import pushes_link

        if not pushes_link(type(self)):
            # The api-server derives the link (links.py): Airflow pushes none after us.
            self.operator_extra_links = ()
        self._store = store = OutputStore.configured(self.storage_root)
        run = RunInfo(context["run_id"], interval_of(context), self._rebuilds(context))
        target = run.output_id(self.task_id, self.output_id, self.partitioned)
        inputs = {
            name: run.output_id(name, oid, name in self.partitioned_inputs)
            for name, oid in self.inputs.items()
        }
        seen = self._skip_if_current(context, store, target, inputs, run).generation
        # On an object store, the read of the claims that takes the output tells
        # whether another attempt holds it: then the task waits in the triggerer.
        holding = store.locked(
            target,
            claimant=_claimant(context),
            waiting=self.log.info,
            presumed_dead=presumed_dead,
            busy=lambda holder: self._defer_to(store, target, holder, seen),
        )
        with holding, contextlib.ExitStack() as reading:
            # Shared locks: gc leaves the inputs alone while we check and read them.
            for output_id in inputs.values():
                reading.enter_context(store.locked(output_id, shared=True))
            # Re-check under the lock: a concurrent producer may just have committed.
            found = self._skip_if_current(context, store, target, inputs, run, under_lock=True)
            self._produce_and_commit(context, store, run, target, found)

    def _rebuilds(self, context: Any) -> frozenset[str]:
        """``{task_id}`` if this run rebuilds this task, else nothing. Only a run asked
        to rebuild reads the plan (a request to the api-server, saved on every other
        attempt); the plan passes the names asked, resolved here against this task's
        ancestors."""
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        params = context.get("params") or {}
        if not (conf.get("rebuild") or params.get("rebuild")):
            return frozenset()
        ti = context["ti"]
        asked = ti.xcom_pull(task_ids=PLAN_TASK, key=REBUILD_XCOM)
        if asked is not None:
            return rebuilds_for(self, {"rebuild_asked": asked})
        # A plan task of an engine before REBUILD_XCOM: its plan says it all.
        return rebuilds_for(self, ti.xcom_pull(task_ids=PLAN_TASK, key=PLAN_XCOM) or {})

    def resume(self, context: Any, event: Mapping[str, Any] | None = None) -> None:
        """Back from waiting for another attempt's claim: skip or produce, as new."""
        event = event or {}
        self.log.info("the other attempt's claim ended (%s)", event.get("reason"))
        self.execute(context, presumed_dead=event.get("claim"))

    def _defer_to(self, store: OutputStore, target: str, holder: Claim, seen: int | None) -> None:
        """Wait for another worker's claim in the triggerer, freeing this worker slot."""
        self.log.info(
            "output %s is being produced by %s (try %s on %s); waiting in the triggerer",
            target[:12],
            holder.owner,
            holder.attempt,
            holder.host,
        )
        # Imported here: only a deferring task needs Airflow's trigger machinery, and
        # every task process (and every DAG parse) would otherwise import it.
        from alamode_airflow.triggers import ClaimReleasedTrigger

        trigger = ClaimReleasedTrigger(store.url, store.conn_id, target, seen)
        self.defer(trigger=trigger, method_name="resume")

    def _skip_if_current(
        self,
        context: Any,
        store: OutputStore,
        target: str,
        inputs: Mapping[str, str],
        run,
        under_lock: bool = False,
    ) -> Lookup:
        """Skip when the output is current (recorded, and made from each input's
        current generation), unless this run rebuilds it and has not yet; else the
        output's lookup, with the inputs' lookups (all at once) kept for the record
        when ``under_lock`` (before it, an output not done needs none)."""
        found = store.settle(target, self.log.warning)
        if found.status is Found.NEWER:  # never written over by an older version
            raise AlamodeError(found.reason, task=self.task_id)
        if not found.done and not under_lock:
            return found  # the inputs are looked up under the lock, for the record
        # A local lookup is a few system calls: threads would cost more than they save.
        look, ids = store.lookup, inputs.values()
        looked = {i: look(i) for i in ids} if store.local else look_up_all(look, ids)
        self._inputs_found = {name: looked[oid] for name, oid in inputs.items()}
        if not found.done:
            return found
        record = found.record
        reads = {n: f.record if f.done else None for n, f in self._inputs_found.items()}
        stale = record.stale_reason(reads)
        ours = (record.dag_id, record.run_id) == (context["ti"].dag_id, run.run_id)
        if stale is None and (self.task_id not in run.rebuild or ours):
            self._lineage_record = record  # COMPLETE reports the generation found current
            said = f"output {target[:12]} already produced by {record.produced_by()}"
            raise AirflowSkipException(said + _cleared_hint(context, self.task_id))
        self.log.info(
            "%s %s: generation %d (by %s) stays, generation %d is written beside it",
            f"stale ({stale})" if stale else "rebuilding",
            target[:12],
            found.generation,
            record.produced_by(),
            found.next_generation,
        )
        return found

    def _produce_and_commit(
        self, context: Any, store: OutputStore, run: RunInfo, target: str, found: Lookup
    ) -> None:
        start = datetime.now(UTC)
        generation = found.next_generation
        staging = store.stage(target)
        try:
            locations = self._locations(store, staging / "inputs")
            self.produce(context, staging / "data", locations, run)
            record = self._record(context, start, staging, run, (store, target, generation))
            outcome = store.commit(staging, record)
            # COMPLETE reports the generation committed here, without a lookup (which
            # could find a newer one); another attempt's commit is looked up then.
            self._lineage_record = None if outcome is Committed.ALREADY else record
        except InputModified as exc:
            store.discard(staging)
            self._quarantine_inputs(store, exc.inputs)
            raise
        except BaseException:
            store.discard(staging)
            raise
        if outcome is Committed.ALREADY:
            raise AirflowSkipException(f"output {target[:12]} {outcome.value}")
        context["ti"].xcom_push(RECORD_XCOM, record.to_json())
        # From the record just committed: no second lookup (a request on object stores).
        self.committed_location = store.shown(store.data_of(record))
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {
                "output_id": target,
                "generation": generation,
                "file_output_id": self.output_id,
                "location": self.committed_location,
            }
        self.log.info(
            "committed output %s generation %d (%d files) to %s",
            target[:12],
            generation,
            len(record.manifest),
            self.committed_location,
        )

    def _quarantine_inputs(self, store: OutputStore, names) -> None:
        """The command changed committed inputs: those generations are no longer what
        their records say, so they are set aside and never served again (their
        readers are made anew). Downloaded copies (object stores) left the store
        intact."""
        if not store.local:
            return
        # Every tombstone first: no damaged input stays current if a move fails.
        for name in names:
            found = self._inputs_found[name]
            self.log.error(
                "input %s (%s generation %d) was changed by the command; quarantining it",
                name,
                found.record.output_id[:12],
                found.generation,
            )
            store.backend.bury(found.record.output_id, found.generation)
        for name in names:
            found = self._inputs_found[name]
            try:
                store.quarantine(found.record.output_id, found.generation)
            except OSError as exc:  # the tombstone already keeps it from being served
                self.log.error("could not move input %s aside: %s", name, exc)

    def _locations(self, store: OutputStore, downloads: Path) -> dict[str, str]:
        """Local folders with the inputs' current generations (downloaded from an
        object store), as found under the shared locks."""
        locations = {}
        for name, found in self._inputs_found.items():
            if not found.done:
                raise CommandFailed(
                    f"input {name!r} has no current success ({found.reason or 'missing'})",
                    task=self.task_id,
                )
            locations[name] = str(store.fetch(found.record, downloads / name))
        return locations

    def _record(self, context, start, staging: Path, run: RunInfo, attempt) -> SuccessRecord:
        """The success record of one attempt: (store, output ID, generation); it names
        each input's ID and the generation read. The rendered command is recorded with
        the secrets this process knows (Variables and Connections read while rendering)
        masked, as Airflow's Rendered Template tab shows it: the record is kept in the
        store and XCom and shown by ``alamode status`` and the Provenance page."""
        from alamode_airflow._compat import redact

        store, output_id, generation = attempt
        inputs = {name: found.record.output_id for name, found in self._inputs_found.items()}
        try:
            entries = manifest(staging / "data")
        except OutputRefused as exc:
            exc.task = self.task_id  # the task's log and the UI name the task
            raise
        end = datetime.now(UTC)
        ti = context["ti"]
        return SuccessRecord(
            output_id=output_id,
            dag_id=ti.dag_id,
            task=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            start=start.isoformat(),
            end=end.isoformat(),
            duration_s=round((end - start).total_seconds(), 3),
            command=redact(self.command, "command"),
            image=self.image,
            sha=self.sha,
            inputs=inputs,
            input_generations={n: f.generation for n, f in self._inputs_found.items()},
            input_digests={n: f.record.digest for n, f in self._inputs_found.items()},
            data_path=store.data_path(staging),
            preimage_b64=base64.b64encode(self.preimage_source()).decode(),
            host=socket.gethostname(),
            manifest=entries,
            file_output_id=self.output_id if self.partitioned else None,
            interval=run.interval if self.partitioned else None,
            generation=generation,
            rebuilt=generation > 0,
        )

    def produce(self, context: Any, output: Path, inputs: Mapping[str, str], run: RunInfo) -> None:
        """Write the output into ``output``; ``inputs`` maps dependency names to the
        locations of their committed outputs."""
        raise NotImplementedError


def _cleared_hint(context: Any, task_id: str) -> str:
    """What a task instance run again (Airflow's Clear) that finds its output recorded
    adds to its skip: a location that succeeded is never written again, so Clear does
    not recompute; a run that rebuilds the task writes a new generation beside it."""
    if getattr(context["ti"], "try_number", 1) <= 1:
        return ""
    conf = json.dumps({"rebuild": [task_id]})
    return (
        f". Clear never recomputes a recorded output (it re-runs the attempt, and the "
        f"output is current); to recompute it, trigger a run with conf {conf}, or use "
        f"Rebuild on the task's Provenance page"
    )


def engine_attributes(
    *,
    output_id: str,
    inputs: Mapping[str, str],
    preimage_source: Callable[[], bytes],
    cwd: str,
    partitioned: bool = False,
    partitioned_inputs: frozenset[str] = frozenset(),
    command: str = "",
    image: str | None = None,
    sha: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    storage_root: str | None = None,
    ancestry: Callable[[], set[str]] | None = None,
) -> dict[str, Any]:
    """The engine's own attributes of an operator, from its arguments (what
    ``AlamodeOperator.__init__`` sets, and the factory's copies of an operator too).
    ``ancestry`` gives the names of every task this one is downstream of (the
    factory's, from the pipeline); without it, a walk up the operator's DAG."""
    return {
        "output_id": output_id,
        "inputs": dict(inputs),
        # Bencoded only when a record is written, not on every DAG parse.
        "preimage_source": preimage_source,
        "partitioned": partitioned,
        "partitioned_inputs": frozenset(partitioned_inputs),
        "command": command,
        "image": image,
        "sha": sha,
        "storage_root": storage_root,
        "cwd": cwd,
        # None, not {}, when empty: each template field set costs the serializer work.
        "env": dict(env) if env else None,
        "timeout_s": timeout_s,
        "ancestry": ancestry,
    }


def _claimant(context: Any) -> Claimant:
    ti = context["ti"]
    return Claimant(
        owner=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}",
        attempt=str(ti.try_number),
        host=socket.gethostname(),
    )


class AlamodeCommandOperator(AlamodeOperator):
    """Runs the spec's ``command`` in a shell (the embedded default runner)."""

    template_fields = ("command", "env")
    _running: Command | None = None

    def produce(self, context: Any, output: Path, inputs: Mapping[str, str], run: RunInfo) -> None:
        self.log.info("running: %s", self.command)
        self._running = Command(self.invocation(str(output), inputs, run))
        self._running.run(self.log.info)

    def invocation(self, output: str, inputs: Mapping[str, str], run: RunInfo) -> Invocation:
        """The command with its locations (as the command will see them)."""
        env = {k: str(v) for k, v in (self.env or {}).items()}
        if run.interval:
            env["ALAMODE_INTERVAL_START"], env["ALAMODE_INTERVAL_END"] = run.interval
        return Invocation(
            command=self.command,
            cwd=self.cwd,
            output=output,
            output_id=run.output_id(self.task_id, self.output_id, self.partitioned),
            task=self.task_id,
            inputs=inputs,
            env=env,
            timeout=self.timeout_s,
            read_only=self._read_only(),
        )

    def _read_only(self) -> tuple[str, ...]:
        """Beyond the inputs, the committed store itself is out of a command's reach
        (``$ALAMODE_INPUT_X/../record.json``, other outputs) on a local root."""
        store = getattr(self, "_store", None) or OutputStore.configured(self.storage_root)
        return (str(Path(store.root.path) / "objects"),) if store.local else ()

    def on_kill(self) -> None:
        if self._running:
            self._running.kill()
