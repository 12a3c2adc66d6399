"""The same encoded files on a cluster: CeleryExecutor with two workers, PostgreSQL,
Redis, outputs in an S3 bucket, driven through the REST API. The tests run in order
on one deployment, each leaving the runs the next one looks at. The last ones add a
worker for the queue ``gpu`` and a pool, as an operator routes tasks to a GPU machine."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pytest

from a_la_mode import Dag, load
from alamode_airflow.receipts import Receipt
from alamode_airflow.records import SuccessRecord
from loopback.browser import SKIPPED, count_squares, screenshot
from loopback.pipelines import generated
from loopback.rest import Api
from tests.cluster.conftest import REPO

GEN_TASKS = 50
DAY1, DAY2 = "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"


def counter(base: Path) -> Path:
    """The file every command appends its name to: what executed, on any worker."""
    return base / "executed.txt"


def executed(base: Path) -> list[str]:
    path = counter(base)
    return path.read_text().split() if path.exists() else []


def gate(base: Path) -> Path:
    return base / "race-gate"


def write_dags(dags: Path, base: Path) -> None:
    shutil.copy(REPO / "dags" / "collage.alamode", dags)
    generated("gen50", GEN_TASKS, counter(base)).save(dags / "gen50.alamode")
    race = Dag({"dag_id": "race", "max_active_runs": 8})
    # The producer holds the output until the test opens the gate: by then every
    # other run's task has found it busy.
    hold = f"while [ ! -e {gate(base)} ]; do sleep 0.2; done"
    race.task(
        "shared",
        {"command": f'echo shared >> {counter(base)}; {hold}; echo x > "$ALAMODE_OUTPUT/x"'},
    )
    race.save(dags / "race.alamode")
    victim = Dag({"dag_id": "victim", "retries": 1})
    command = (
        f"echo $$ > {base / 'victim.pid'}; echo victim-start >> {counter(base)}; "
        f'echo partial > "$ALAMODE_OUTPUT/out.txt"; sleep 20; '
        f'echo ok > "$ALAMODE_OUTPUT/out.txt"; echo victim-done >> {counter(base)}'
    )
    victim.task("victim", {"command": command})
    victim.save(dags / "victim.alamode")
    write_gpu_dags(dags, base)


GPU_POOL = "gpu_pool"
GPU_DAGS = ["gpu", "gpu_free"]


def spans(base: Path) -> Path:
    """Where each command of the gpu DAGs appends: task, worker, start, end."""
    return base / "gpu-spans.txt"


def span_command(base: Path, name: str, middle: str) -> str:
    """Record when task ``name`` ran, around ``middle``, and on which worker (the
    literal name keeps each task's spec, hence its output, its own)."""
    return (
        f"start=$(date +%s.%N); {middle}; "
        f'echo "{name} $CLUSTER_WORKER $start $(date +%s.%N)" >> {spans(base)}; '
        f'echo {name} > "$ALAMODE_OUTPUT/x"'
    )


def write_gpu_dags(dags: Path, base: Path) -> None:
    # Two independent tasks for the one-slot pool, the second defined with the higher
    # priority: it takes the slot first.
    gpu = Dag({"dag_id": "gpu"})
    for name, weight in (("a", 1), ("b", 10)):
        command = span_command(base, name, "sleep 3")
        gpu.task(name, {"command": command}, queue="gpu", pool=GPU_POOL, priority_weight=weight)
    gpu.save(dags / "gpu.alamode")
    # The same queue, no pool: each waits (at most two minutes) for the other to start,
    # so both succeed only if they ran at the same time.
    free = Dag({"dag_id": "gpu_free"})
    for name in ("c", "d"):
        started = base / f"started-{name}"
        both = f"[ -e {base / 'started-c'} ] && [ -e {base / 'started-d'} ]"
        wait = f"touch {started}; for i in $(seq 600); do {both} && break; sleep 0.2; done; {both}"
        free.task(name, {"command": span_command(base, name, wait)}, queue="gpu")
    free.save(dags / "gpu_free.alamode")


def base_of(deployment) -> Path:
    return deployment.home.home.parent


def output_of(deployment, dag_file: str, task: str) -> str:
    return load(deployment.home.dags / dag_file)[task].output


def record_text(deployment, output_id: str, generation: int = 0) -> bytes:
    """The success record of an output as it is in the bucket."""
    key = f"{deployment.store_prefix}objects/{output_id}/{generation}/record.json"
    body = deployment.s3.client().get_object(Bucket=deployment.s3.bucket, Key=key)["Body"]
    return body.read()


def record(deployment, output_id: str, generation: int = 0) -> dict:
    """The success record of an output, read straight from the bucket."""
    return json.loads(record_text(deployment, output_id, generation))


def committed(deployment, output_id: str) -> list[str]:
    """The keys of an output in the bucket (relative to its folder), the data path a
    generation's record names written ``data`` (each attempt uploads under a prefix of
    its own), and the receipt of that record written ``receipt``: any other attempt's
    leftovers, or a receipt of another record, show as they are."""
    prefix = f"{deployment.store_prefix}objects/{output_id}/"
    keys = sorted(key[len(prefix) :] for key in deployment.s3.keys(prefix))
    texts = {
        key.split("/")[0]: record_text(deployment, output_id, int(key.split("/")[0]))
        for key in keys
        if key.endswith("/record.json")
    }
    named = {g: json.loads(text)["data_path"] for g, text in texts.items()}
    receipts = {
        g: Receipt.of(SuccessRecord.loads(text.decode()), text).name for g, text in texts.items()
    }

    def plain(key: str) -> str:
        generation, rest = key.split("/", 1)
        data = named.get(generation)
        if data and rest.startswith(f"{data}/"):
            return f"{generation}/data/{rest[len(data) + 1 :]}"
        if rest == receipts.get(generation):
            return f"{generation}/receipt"
        return key

    return sorted(plain(key) for key in keys)


@pytest.fixture(scope="module")
def api(deployment) -> Api:
    api = Api(deployment.url)
    api.wait_dags(["collage", "gen50", "race", "victim", *GPU_DAGS])
    return api


def test_first_run_computes_and_the_second_skips_everything(deployment, api):
    base = base_of(deployment)
    api.unpause("gen50")
    first = api.trigger("gen50", DAY1)
    assert api.wait_run("gen50", first) == "success"
    states = api.states("gen50", first)
    assert sorted(executed(base)) == sorted(f"t{n}" for n in range(GEN_TASKS))
    assert set(states.values()) == {"success"}
    second = api.trigger("gen50", DAY2)
    assert api.wait_run("gen50", second) == "success"
    states = api.states("gen50", second)
    assert states.pop("alamode_plan") == "success"
    assert set(states.values()) == {"skipped"}
    assert len(states) == GEN_TASKS
    assert len(executed(base)) == GEN_TASKS  # nothing ran again
    for n in range(GEN_TASKS):
        output = output_of(deployment, "gen50.alamode", f"t{n}")
        assert committed(deployment, output) == ["0/data/out.txt", "0/receipt", "0/record.json"]
        assert record(deployment, output)["run_id"] == first


def test_the_collage_example_runs_on_the_cluster(deployment, api):
    """Unpausing the @daily collage starts its latest interval's run; a triggered run
    after it finds all four outputs in the bucket."""
    api.unpause("collage")
    deadline = time.monotonic() + 120
    while not (runs := api.call("GET", "/dags/collage/dagRuns")["dag_runs"]):
        assert time.monotonic() < deadline, "the scheduler started no run of collage"
        time.sleep(1)
    scheduled = runs[0]["dag_run_id"]
    assert api.wait_run("collage", scheduled) == "success"
    assert set(api.states("collage", scheduled).values()) == {"success"}
    again = api.trigger("collage", DAY1)
    assert api.wait_run("collage", again) == "success"
    tasks = [task.name for task in load(deployment.home.dags / "collage.alamode")]
    assert api.states("collage", again) == {
        "alamode_plan": "success",
        **dict.fromkeys(tasks, "skipped"),
    }
    for task in tasks:
        output = output_of(deployment, "collage.alamode", task)
        keys = committed(deployment, output)
        assert "0/record.json" in keys
        assert any(key.startswith("0/data/") and key.endswith(".png") for key in keys)
        assert record(deployment, output)["run_id"] == scheduled
    assert "0/data/collage.png" in committed(
        deployment, output_of(deployment, "collage.alamode", "collage")
    )


def task_logs(deployment, dag_id: str, task_id: str) -> list[str]:
    """The log of every try of ``task_id`` in every run of ``dag_id``."""
    logs = deployment.home.home / "logs" / f"dag_id={dag_id}"
    return [path.read_text() for path in sorted(logs.glob(f"run_id=*/task_id={task_id}/*.log"))]


def shared_states(api: Api, runs: list[str]) -> list[str | None]:
    return [api.states("race", run).get("shared") for run in runs]


def test_eight_concurrent_runs_needing_one_output_compute_it_once(deployment, api):
    """One computes; the others wait for its claim in the triggerer (no worker slot
    held), then skip."""
    base = base_of(deployment)
    api.unpause("race")
    output = output_of(deployment, "race.alamode", "shared")
    claims_prefix = f"{deployment.store_prefix}claims/{output}/"
    # The first run's task claims the output and holds it at the gate; the other seven
    # start once the claim is there. (Started all at once, each may look before any
    # claims: then all but one lose the race to claim and wait in their slots.)
    runs = [api.trigger("race", "2026-04-01T00:00:00Z")]
    deadline = time.monotonic() + 300
    while not deployment.s3.keys(claims_prefix):
        assert time.monotonic() < deadline, "the first task never claimed the output"
        time.sleep(0.5)
    runs += [api.trigger("race", f"2026-04-0{day}T00:00:00Z") for day in range(2, 9)]
    while sum(state in ("running", "deferred") for state in shared_states(api, runs)) < 8:
        assert time.monotonic() < deadline, "the 8 tasks never all started"
        time.sleep(1)
    gate(base).touch()  # every run's task is producing, or waiting for the producer
    finals = [api.wait_run("race", run) for run in runs]
    assert finals == ["success"] * 8
    states = sorted(api.states("race", run)["shared"] for run in runs)
    assert states == ["skipped"] * 7 + ["success"]
    assert executed(base).count("shared") == 1
    assert committed(deployment, output) == ["0/data/x", "0/receipt", "0/record.json"]
    # The producer's claim, and any a late waiter took only to find the record: all
    # let go.
    claims = deployment.s3.keys(claims_prefix)
    client = deployment.s3.client()
    bodies = [client.get_object(Bucket=deployment.s3.bucket, Key=key)["Body"] for key in claims]
    assert claims
    assert all(json.loads(body.read())["released"] for body in bodies)
    logs = task_logs(deployment, "race", "shared")
    deferred = [log for log in logs if "waiting in the triggerer" in log]
    # A task that found the claim between the check and its own claim waits in its
    # slot instead ("waiting for"); one that started after the commit (a loaded
    # scheduler can start it late) skips at once, finding the record.
    in_slot = [log for log in logs if "waiting for race/" in log and log not in deferred]
    late = [
        log
        for log in logs
        if "already produced by" in log and log not in deferred and log not in in_slot
    ]
    assert deferred, "no task waited in the triggerer"
    assert len(deferred) + len(in_slot) + len(late) == 7
    assert all("claim ended (committed)" in log for log in deferred)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def victim_instance(api: Api, run: str) -> dict:
    return next(ti for ti in api.task_instances("victim", run) if ti["task_id"] == "victim")


def test_a_worker_killed_mid_task_commits_nothing_and_the_retry_recomputes(deployment, api):
    base = base_of(deployment)
    output = output_of(deployment, "victim.alamode", "victim")
    api.unpause("victim")
    run = api.trigger("victim", DAY1)
    deadline = time.monotonic() + 180
    while "victim-start" not in executed(base):
        assert time.monotonic() < deadline, "the victim task never started"
        time.sleep(0.5)
    command = int((base / "victim.pid").read_text())
    killed = deployment.kill_worker_running(victim_instance(api, run)["pid"])
    deadline = time.monotonic() + 10
    while alive(command):  # it dies with its task process
        assert time.monotonic() < deadline, "the command outlived its killed worker"
        time.sleep(0.2)
    # It had written a partial output: nothing of it, and no record, is in the bucket.
    assert executed(base).count("victim-done") == 0
    assert committed(deployment, output) == []
    deployment.start_worker(killed)
    assert api.wait_run("victim", run) == "success"
    ti = victim_instance(api, run)
    assert ti["state"] == "success"
    assert ti["try_number"] == 2
    assert executed(base).count("victim-start") == 2
    assert executed(base).count("victim-done") == 1
    assert committed(deployment, output) == ["0/data/out.txt", "0/receipt", "0/record.json"]
    assert record(deployment, output)["try_number"] == 2
    data_path = record(deployment, output)["data_path"]
    data = f"{deployment.store_prefix}objects/{output}/0/{data_path}/out.txt"
    body = deployment.s3.client().get_object(Bucket=deployment.s3.bucket, Key=data)["Body"]
    assert body.read() == b"ok\n"


def test_the_grid_view_shows_the_skipped_tasks(deployment, api, tmp_path):
    """A person opening the gen50 DAG sees the second run's 50 skipped squares, as
    many as the REST API reports."""
    runs = api.call("GET", "/dags/gen50/dagRuns")["dag_runs"]
    skipped = sum(
        state == "skipped"
        for run in runs
        for state in api.states("gen50", run["dag_run_id"]).values()
    )
    assert skipped == GEN_TASKS
    picture = screenshot(f"{deployment.url}/dags/gen50", tmp_path / "gen50-grid.png")
    print(f"grid view screenshot: {picture}")
    assert count_squares(picture, SKIPPED) == skipped


@pytest.fixture(scope="module")
def gpu_worker(deployment, api) -> None:
    """A third worker that serves only the queue ``gpu`` (the others serve only the
    default queue), with room for two tasks, and a pool of one slot."""
    deployment.start_worker("gpu", concurrency=2, queues=("gpu",))
    api.set_pool(GPU_POOL, 1, "one GPU")


def ran(base: Path) -> dict[str, tuple[str, float, float]]:
    """Task → (worker, start, end) of every gpu DAG command that finished."""
    lines = spans(base).read_text().splitlines() if spans(base).exists() else []
    return {
        name: (worker, float(start), float(end))
        for name, worker, start, end in (line.split() for line in lines)
    }


def test_tasks_on_a_queue_run_on_its_worker_and_a_pool_of_one_runs_them_in_turn(
    deployment, api, gpu_worker
):
    base = base_of(deployment)
    api.unpause("gpu")
    run = api.trigger("gpu", DAY1)
    assert api.wait_run("gpu", run) == "success"
    instances = {ti["task_id"]: ti for ti in api.task_instances("gpu", run)}
    for name in ("a", "b"):
        assert instances[name]["state"] == "success"
        assert (instances[name]["queue"], instances[name]["pool"]) == ("gpu", GPU_POOL)
    assert instances["alamode_plan"]["queue"] == "default"
    seen = ran(base)
    assert {name: seen[name][0] for name in ("a", "b")} == {"a": "gpu", "b": "gpu"}
    # The worker had room for both, the pool for one: b (the higher priority) ran
    # first, and a started only after b had finished.
    assert seen["b"][2] <= seen["a"][1], seen


def test_the_same_queue_without_a_pool_runs_tasks_at_the_same_time(deployment, api, gpu_worker):
    base = base_of(deployment)
    api.unpause("gpu_free")
    run = api.trigger("gpu_free", DAY1)
    # Each command succeeds only if it saw the other one start while it was running.
    assert api.wait_run("gpu_free", run) == "success"
    seen = ran(base)
    assert {name: seen[name][0] for name in ("c", "d")} == {"c": "gpu", "d": "gpu"}
    (c_start, c_end), (d_start, d_end) = seen["c"][1:], seen["d"][1:]
    assert c_start < d_end, seen
    assert d_start < c_end, seen
