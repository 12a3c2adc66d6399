"""The engine's operators.

``AlamodeOperator`` owns ``execute()``: skip when the output is already recorded,
otherwise hold the output's lock, re-check, let ``produce`` write into a fresh staging
folder, commit, and record success in the store and in XCom. Subclasses override
``produce`` only. ``AlamodePlanOperator`` runs first and marks every task whose output
is recorded as skipped in one call, so a cached run starts no worker for them.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alamode_airflow import settings
from alamode_airflow._compat import AirflowSkipException, BaseOperator, DownstreamTasksSkipped
from alamode_airflow.records import SuccessRecord, manifest
from alamode_airflow.runner import Command, CommandFailed, Invocation
from alamode_airflow.store import Committed, Found, OutputStore

RECORD_XCOM = "alamode_record"
PLAN_XCOM = "alamode_plan"
PLAN_TASK = "alamode_plan"


def _store(root: str | None) -> OutputStore:
    return OutputStore(root or settings.storage_root())


def _check(store: OutputStore, output_id: str, log) -> SuccessRecord | None:
    """The record if the output is done; otherwise None, after moving aside an object
    whose record is corrupt or whose data vanished (one log line each)."""
    found = store.lookup(output_id)
    if found.done:
        return found.record
    if found.status in (Found.CORRUPT, Found.VANISHED):
        log.warning("output %s is not a success (%s); recomputing", output_id[:12], found.reason)
        store.quarantine(output_id)
    return None


class AlamodeOperator(BaseOperator):
    """Produce one content-addressed output, at most once across all runs and DAGs."""

    ui_color = "#fdf1dc"

    def __init__(
        self,
        *,
        output_id: str,
        inputs: Mapping[str, str],
        preimage: bytes,
        command: str = "",
        image: str | None = None,
        sha: str | None = None,
        storage_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_id = output_id
        self.inputs = dict(inputs)
        self.preimage = preimage
        self.command = command
        self.image = image
        self.sha = sha
        self.storage_root = storage_root

    def execute(self, context: Any) -> None:
        store = _store(self.storage_root)
        self._skip_if_done(store)
        with store.producing(self.output_id):
            # Re-check under the lock: a concurrent producer may just have committed.
            self._skip_if_done(store)
            self._produce_and_commit(context, store)

    def _skip_if_done(self, store: OutputStore) -> None:
        record = _check(store, self.output_id, self.log)
        if record is not None:
            raise AirflowSkipException(
                f"output {self.output_id[:12]} already produced by {record.produced_by()}"
            )

    def _produce_and_commit(self, context: Any, store: OutputStore) -> None:
        start = datetime.now(UTC)
        staging = store.stage(self.output_id)
        try:
            self.produce(context, staging / "data", self._input_locations(store))
            record = self._record(context, start, staging / "data")
            outcome = store.commit(staging, record)
        except BaseException:
            store.discard(staging)
            raise
        if outcome is Committed.ALREADY:
            raise AirflowSkipException(f"output {self.output_id[:12]} {outcome.value}")
        context["ti"].xcom_push(RECORD_XCOM, record.to_json())
        self.log.info(
            "committed output %s (%d files) to %s",
            self.output_id[:12],
            len(record.manifest),
            store.location(self.output_id),
        )

    def _input_locations(self, store: OutputStore) -> dict[str, str]:
        locations = {}
        for name, output_id in self.inputs.items():
            if not store.lookup(output_id).done:
                raise CommandFailed(
                    f"input {name!r} ({output_id[:12]}) has no success record", task=self.task_id
                )
            locations[name] = str(store.location(output_id).path)
        return locations

    def _record(self, context: Any, start: datetime, data: Path) -> SuccessRecord:
        end = datetime.now(UTC)
        ti = context["ti"]
        return SuccessRecord(
            output_id=self.output_id,
            dag_id=ti.dag_id,
            task=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            start=start.isoformat(),
            end=end.isoformat(),
            duration_s=round((end - start).total_seconds(), 3),
            command=self.command,
            image=self.image,
            sha=self.sha,
            inputs=self.inputs,
            preimage_b64=base64.b64encode(self.preimage).decode(),
            host=socket.gethostname(),
            manifest=manifest(data),
        )

    def produce(self, context: Any, output: Path, inputs: Mapping[str, str]) -> None:
        """Write the output into ``output``; ``inputs`` maps dependency names to the
        locations of their committed outputs."""
        raise NotImplementedError


class AlamodeCommandOperator(AlamodeOperator):
    """Runs the spec's ``command`` in a shell (the embedded default runner)."""

    template_fields = ("command", "env")

    def __init__(
        self,
        *,
        cwd: str,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cwd = cwd
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        self._running: Command | None = None

    def produce(self, context: Any, output: Path, inputs: Mapping[str, str]) -> None:
        call = Invocation(
            command=self.command,
            cwd=self.cwd,
            output=str(output),
            output_id=self.output_id,
            task=self.task_id,
            inputs=inputs,
            env={k: str(v) for k, v in self.env.items()},
            timeout=self.timeout_s,
        )
        self.log.info("running: %s", self.command)
        self._running = Command(call)
        self._running.run(self.log.info)

    def on_kill(self) -> None:
        if self._running:
            self._running.kill()


class AlamodePlanOperator(BaseOperator):
    """Checks every task's output before anything runs and marks the ones already
    recorded as skipped, all in one call to Airflow."""

    ui_color = "#e8e0f5"

    def __init__(
        self, *, outputs: Mapping[str, str], storage_root: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.outputs = dict(outputs)
        self.storage_root = storage_root

    def execute(self, context: Any) -> None:
        store = _store(self.storage_root)
        cached = {}
        for task_id, output_id in self.outputs.items():
            record = _check(store, output_id, self.log)
            if record is not None:
                cached[task_id] = record
                self.log.info(
                    "%s: output %s already produced by %s; skipping",
                    task_id,
                    output_id[:12],
                    record.produced_by(),
                )
        to_run = [t for t in self.outputs if t not in cached]
        self.log.info(
            "%d of %d outputs recorded; to run: %s",
            len(cached),
            len(self.outputs),
            ", ".join(to_run) or "nothing",
        )
        context["ti"].xcom_push(PLAN_XCOM, {"skipped": sorted(cached), "to_run": to_run})
        if cached:
            raise DownstreamTasksSkipped(tasks=sorted(cached))
