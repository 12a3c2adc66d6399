"""The DAG factory: one verified pipeline file in, one Airflow DAG of our operators out."""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import gc
import os
from collections.abc import Callable, Iterator, MutableMapping, MutableSequence, MutableSet
from pathlib import Path
from typing import Any

from a_la_mode import Pipeline, PipelineTask, SpecValueError, TaskNameError
from a_la_mode.partitions import partitioned
from alamode_airflow import settings
from alamode_airflow._compat import (
    DAG,
    AirflowException,
    AirflowTimetableInvalid,
    Param,
    TriggerRule,
)
from alamode_airflow.links import output_asset
from alamode_airflow.meta import dag_settings, report_spec_settings, report_unknown
from alamode_airflow.operating import (
    TaskSettings,
    plan_settings,
    spec_settings,
    task_settings,
)
from alamode_airflow.operators import AlamodeCommandOperator, engine_attributes
from alamode_airflow.plan import PLAN_TASK, AlamodePlanOperator
from alamode_airflow.spec import TaskSpec, task_spec

REBUILD_PARAM = Param(
    [],
    type="array",
    items={"type": "string"},
    title="Rebuild",
    description=(
        "Task names whose outputs this run computes again even though they are recorded "
        "(and everything downstream of them), or 'all'. The old outputs and their records "
        "are kept; the new ones are written beside them as a new generation."
    ),
)


REBUILD_DOC = (
    "Trigger with `rebuild` (a list of task names, or `all`) to compute those outputs "
    "again, and everything downstream of them, as new generations beside the old ones."
)


def build_dag(
    pipeline: Pipeline,
    path: Path,
    storage_root: str | None = None,
    *,
    templated: bool = True,
    running: tuple[str, str] | None = None,
) -> DAG:
    """The Airflow DAG for ``pipeline`` read from ``path``.

    A plan task runs first and skips every task whose output is already recorded;
    every other task runs when none of its upstream tasks failed (a skipped upstream
    means its output exists). Tasks with the same Airflow arguments are copies of the
    first one built with them (``copier``); ``templated=False``
    builds each (what the copies must equal).

    ``running`` is the (dag_id, task_id) a task process parses the file to run
    (``loader.running_task``). When it names one of this DAG's own tasks, the DAG
    holds that task alone, as it is in the whole DAG but for its relatives: the
    process then builds one operator, not one per task of the file (thousands, again
    for every task of every run). It knows what it is downstream of from the pipeline
    (``ancestry``)."""
    # Everything made here stays alive (the DAG holds it), yet its many objects would
    # set off collections that walk them all again and again: thousands of operators
    # cost several full collections. The loader of the file does the same (``load``).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(pipeline, path, storage_root, templated, running)
    finally:
        if collecting:
            gc.enable()


def _build(
    pipeline: Pipeline,
    path: Path,
    storage_root: str | None,
    templated: bool,
    running: tuple[str, str] | None,
) -> DAG:
    parts = partitioned(pipeline)
    dag_args = dag_settings(pipeline.meta, default_dag_id=path.stem, partitioned=bool(parts))
    report_unknown(str(path), dag_args)
    if PLAN_TASK in pipeline.tasks:
        raise TaskNameError(f"{PLAN_TASK!r} is reserved by the Airflow engine", task=PLAN_TASK)
    alone = running[1] if running and running[0] == dag_args.dag_id else None
    whole = alone not in pipeline.tasks  # the plan task, another DAG's, no task
    tasks = list(pipeline) if whole else [pipeline[alone]]
    kwargs = dict(dag_args.kwargs)
    built = f"Built by alamode-airflow from `{path.name}`. {REBUILD_DOC}"
    kwargs["doc_md"] = "\n\n".join(filter(None, [kwargs.get("doc_md"), built]))
    with _refused_by_airflow():
        dag = DAG(**kwargs)
    operators = _operators(pipeline, tasks, path, dag, (storage_root, parts, templated))
    # Every operator made takes a deep copy of the DAG's params (about 1 ms a task),
    # and only the plan reads the rebuild form's field: added now, it is copied once.
    dag.params.update({"rebuild": REBUILD_PARAM})
    if whole:
        _connect(pipeline, operators, dag, (storage_root, parts))
    with _refused_by_airflow():
        # What Airflow's DAG bag checks before accepting a DAG: failing there would file
        # the error against the loader module, naming no .alamode file.
        dag.validate()
        dag.check_cycle()
    return dag


def _operators(
    pipeline: Pipeline,
    tasks: list[PipelineTask],
    path: Path,
    dag: DAG,
    how: tuple[str | None, frozenset[str], bool],
) -> dict[str, AlamodeCommandOperator]:
    """The operators of ``tasks`` (the pipeline's, all or one), in ``dag``, no edges.
    Every task of the file is checked, whichever are built: a file is broken, or not,
    in every process that parses it."""
    storage_root, parts, templated = how
    operator_class = runner_class(pipeline.meta.get("runner"))
    checked = _checked(pipeline, path, operator_class)
    for task in tasks:  # said of the tasks built: each task's process says its own
        report_spec_settings(str(path), task.name, task.spec)
    templates: dict | None = {} if templated else None
    return {
        task.name: _operator(
            operator_class,
            (task, *checked[task.name]),
            dag,
            storage_root,
            (parts, functools.partial(pipeline.ancestors, task.name)),
            templates,
        )
        for task in tasks
    }


def _checked(
    pipeline: Pipeline, path: Path, operator_class: type[AlamodeCommandOperator]
) -> dict[str, tuple[TaskSpec, TaskSettings, str]]:
    """Each task's spec, settings and working folder, name -> (spec, settings, cwd)."""
    base_cwd = _cwd(str(path.parent), pipeline.meta.get("cwd"), "meta.cwd")
    specs = {task.name: task_spec(task) for task in pipeline}
    for task in pipeline:
        if operator_class is not AlamodeCommandOperator and specs[task.name].image is None:
            raise SpecValueError("a container runner needs an 'image'", task=task.name, key="image")
    settings_of = task_settings(
        pipeline.meta,
        pipeline.order,
        {name: spec_settings(name, spec.retries, spec.timeout_s) for name, spec in specs.items()},
    )
    return {
        name: (spec, settings_of[name], _cwd(base_cwd, spec.cwd, f"tasks.{name}.cwd"))
        for name, spec in specs.items()
    }


def _connect(
    pipeline: Pipeline,
    operators: dict[str, AlamodeCommandOperator],
    dag: DAG,
    where: tuple[str | None, frozenset[str]],
) -> None:
    """The whole DAG's edges, and its plan task ahead of the tasks that read nothing."""
    storage_root, parts = where
    for task in pipeline:
        _depends(operators[task.name], [operators[dep] for dep in task.inputs])
    plan = AlamodePlanOperator(
        task_id=PLAN_TASK,
        outputs={task.name: task.output for task in pipeline},
        partitioned=parts,
        storage_root=storage_root,
        dag=dag,
        **plan_settings(pipeline.meta).arguments,
    )
    for task in pipeline:
        if not task.inputs:
            _depends(operators[task.name], [plan])


@contextlib.contextmanager
def _refused_by_airflow(task: str | None = None) -> Iterator[None]:
    """Airflow's refusal of the DAG's (or ``task``'s operator's) arguments as a
    SpecValueError: the meta keys are checked one by one first (``meta.dag_settings``,
    ``operating``), so this is the net for the rest."""
    try:
        yield
    except AirflowTimetableInvalid as exc:
        raise SpecValueError(f"Airflow refuses the schedule: {exc}", key="meta.schedule") from None
    except (AirflowException, ValueError, TypeError) as exc:
        what = "the DAG" if task is None else "the task"
        key = "meta" if task is None else f"meta.tasks.{task}"
        raise SpecValueError(f"Airflow refuses {what}: {exc}", task=task, key=key) from None


def _depends(op: AlamodeCommandOperator, upstream: list[AlamodeCommandOperator]) -> None:
    """``op`` runs after ``upstream``, all tasks of the DAG being built. What
    ``set_upstream`` records, without what it costs: it checks every task against the
    DAG's hash, which covers every task id, so each edge would cost a walk of the DAG
    and a file of many tasks would take quadratic time."""
    for dep in upstream:
        dep.downstream_task_ids.add(op.task_id)
        op.upstream_task_ids.add(dep.task_id)


def runner_class(name: Any) -> type[AlamodeCommandOperator]:
    """The operator class for meta ``runner``, else ``[alamode] runner``, else local."""
    name = name or settings.get("runner") or "local"
    if name == "local":
        # The container runners' module is imported only by the files that use one.
        return AlamodeCommandOperator
    from alamode_airflow.containers import RUNNERS

    if name not in RUNNERS:
        raise SpecValueError(
            f"unknown runner {name!r}; choose one of {', '.join(RUNNERS)}", key="meta.runner"
        )
    return RUNNERS[name]


def _operator(
    operator_class: type[AlamodeCommandOperator],
    described: tuple[PipelineTask, TaskSpec, TaskSettings, str],
    dag: DAG,
    storage_root: str | None,
    lineage: tuple[frozenset[str], Callable[[], set[str]]],
    templates: dict[tuple, tuple[dict[str, Any], Callable[..., Any]]] | None = None,
) -> AlamodeCommandOperator:
    """The operator of one task (checked: ``_checked``). With ``templates`` (by
    ``_shared_key`` of the Airflow arguments of the operators built so far: those
    arguments, kept alive, and the ``copier`` of one operator built with them), a task
    whose Airflow arguments are those of a template is a copy of it, which costs a
    fraction of building one; otherwise it is built, and becomes a template."""
    task, spec, operated, cwd = described
    parts, ancestry = lineage
    arguments = dict(operated.arguments)
    doc_md = "\n\n".join(filter(None, [arguments.pop("doc_md", None), _doc(task)]))
    arguments["trigger_rule"] = TriggerRule.NONE_FAILED
    own = {
        "output_id": task.output,
        "inputs": dict(task.inputs),  # Airflow keeps it, and deep-copies what it keeps
        "partitioned": task.name in parts,
        "partitioned_inputs": frozenset(dep for dep in task.inputs if dep in parts),
        "preimage_source": task.preimage,
        "command": spec.command,
        "image": spec.image,
        "sha": spec.sha,
        "cwd": cwd,
        "env": dict(spec.env),
        "timeout_s": operated.command_timeout,
        "storage_root": storage_root,
        "ancestry": ancestry,
    }
    outlets = [output_asset(task.output)]
    key = _shared_key(arguments) if templates is not None else None
    if templates is not None and key in templates:
        copy_for = templates[key][1]
        return copy_for(task_id=task.name, doc_md=doc_md, outlets=outlets, **own)
    with _refused_by_airflow(task.name):
        op = operator_class(
            task_id=task.name, dag=dag, doc_md=doc_md, outlets=outlets, **own, **arguments
        )
    if templates is not None:
        templates[key] = (arguments, copier(op))
    return op


#: Argument values compared by value; any other is the same only as the same object.
_VALUES = (str, int, float, type(None), datetime.timedelta, datetime.datetime)


def _shared_key(arguments: dict[str, Any]) -> tuple:
    """What two tasks' Airflow arguments must share for one to be a copy of the other:
    each plain value, and each other object itself (by identity: a setting of
    ``meta.defaults`` is one object every task shares, as Airflow's default_args are,
    while a task's own setting is an object of its own, which a copy must not share).
    One dictionary lookup per task; comparing objects such as pods by value would
    cost a comparison with every template, each converting both pods."""
    return tuple(
        sorted(
            (name, value if isinstance(value, _VALUES) else ("object", id(value)))
            for name, value in arguments.items()
        )
    )


def copier(template: AlamodeCommandOperator) -> Callable[..., AlamodeCommandOperator]:
    """A function making other tasks of ``template``'s DAG, with the same Airflow
    arguments as ``template`` (trigger rule, retries, pool, ...) but their own
    ``task_id``, ``doc_md``, ``outlets`` and engine arguments (``output_id``,
    ``command``, ... as the operator's ``__init__`` takes them, as keywords): what
    ``__init__`` would build, without building it.

    Building an operator runs Airflow's argument handling, defaults merging and some
    sixty guarded attribute sets; a DAG file builds one per task. Tasks that share
    their Airflow arguments share all that work, so each is the template's state (as it
    is now) with what differs replaced: every value that can change (lists,
    dictionaries, sets) is the task's own copy, the params are deep-copied (as Airflow
    copies them for each task), and the task is added to the DAG (and its root task
    group) as ``__init__`` adds it. ``tests/unit/test_factory.py`` checks that a DAG
    built so serializes exactly as one built task by task."""
    kind, dag, base = type(template), template.dag, dict(vars(template))
    # Found once for all the copies: an operator has some seventy attributes.
    changing = [
        (name, copy_of)
        for name, value in base.items()
        if name not in _REPLACED and (copy_of := _copier(type(value))) is not None
    ]

    def copy_for(*, task_id: str, doc_md: str | None, outlets: list, **own: Any):
        state = base.copy()
        for name, copy_of in changing:
            state[name] = copy_of(state[name])
        changed = {"task_id": task_id, "doc_md": doc_md, "outlets": list(outlets), **own}
        state.update(changed)
        state.update(engine_attributes(**own))
        # Not yet in any DAG or group (add_task puts it in both), with no relatives.
        state.update(task_group=None, _dag=None, upstream_task_ids=set())
        state.update(downstream_task_ids=set(), params=copy.deepcopy(base["params"]))
        state[_INIT_KWARGS] = {**base[_INIT_KWARGS], **changed}
        other = object.__new__(kind)
        vars(other).update(state)
        dag.add_task(other)
        return other

    return copy_for


#: How to copy an attribute value of each type, None for a type whose values cannot
#: change (each other type is asked once; asking is an ABC check, which costs most the
#: first time in each parsing process).
_COPIERS: dict[type, Callable[[Any], Any] | None] = {
    list: list.copy,
    dict: dict.copy,
    set: set.copy,
    **dict.fromkeys([str, int, float, bool, bytes, tuple, frozenset, type(None)]),
    **dict.fromkeys([datetime.datetime, datetime.timedelta]),
}
#: Where Airflow keeps the arguments an operator was built with.
_INIT_KWARGS = "_BaseOperator__init_kwargs"
#: Attributes ``copier`` makes anew for each copy rather than copying the template's.
_REPLACED = frozenset(
    {"params", "upstream_task_ids", "downstream_task_ids", "outlets", "inputs", "env"}
    | {"task_group", "_dag", _INIT_KWARGS}
)


def _copier(kind: type) -> Callable[[Any], Any] | None:
    """How to copy a value of type ``kind`` for another operator (None: no need)."""
    try:
        return _COPIERS[kind]
    except KeyError:
        changing = issubclass(kind, (MutableMapping, MutableSequence, MutableSet))
        copy_of = _COPIERS[kind] = copy.copy if changing else None
        return copy_of


def _cwd(base: str, value: Any, key: str) -> str:
    if value is None:
        return base
    if not isinstance(value, str):
        raise SpecValueError("must be a string (a folder)", key=key)
    return os.path.normpath(os.path.join(base, value))


def _doc(task: PipelineTask) -> str:
    inputs = "\n".join(f"- `{name}`: `{oid}`" for name, oid in task.inputs.items()) or "none"
    spec = "\n".join(f"- `{key}`: `{value!r}`" for key, value in task.spec.items())
    return f"**output** `{task.output}`\n\n**inputs**\n{inputs}\n\n**spec**\n{spec}\n"
