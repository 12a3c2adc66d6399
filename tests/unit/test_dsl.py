"""The DSL's ways to connect tasks, and every mistake it refuses."""

from __future__ import annotations

import pytest

from a_la_mode import (
    AlamodeError,
    CycleError,
    Dag,
    DependencyError,
    SpecValueError,
    TaskNameError,
    load,
)


def outputs(dag: Dag) -> dict[str, str]:
    return {name: t["output"] for name, t in dag.encode()["tasks"].items()}


def diamond(connect) -> Dag:
    dag = Dag({"schedule": "@daily"})
    for name in ("a", "b", "c", "d"):
        dag.task(name, {"command": f"make {name}"})
    connect(dag)
    return dag


def by_add_dep(dag):
    dag.b.add_dep(dag.a)
    dag.c.add_dep(dag.a)
    dag.d.add_dep(dag.b, dag.c)


def by_shift(dag):
    dag.a >> [dag.b, dag.c] >> dag.d


def by_lshift(dag):
    dag.d << [dag.b, dag.c] << dag.a


def by_reversed_order(dag):
    dag.d.add_dep([dag.c, dag.b])
    dag.c.add_dep("a")
    dag.b.add_dep(dag.a)


# Pinned: sha256 of preimages bencoded by hand, e.g. b"d7:command6:make a6:inputsdee".
DIAMOND_D = "abc59463fbd68a364db52c0d65be84a60fa0503300331b081e92d1c15d0ca435"


@pytest.mark.parametrize("connect", [by_shift, by_lshift, by_reversed_order])
def test_every_way_of_connecting_gives_the_same_ids(connect):
    assert outputs(diamond(connect)) == outputs(diamond(by_add_dep))


def test_diamond_ids_are_pinned():
    got = outputs(diamond(by_add_dep))
    assert got["a"] == "3c8d5d94409fc06e13e7d5724f8611d38cbcdb186e28683d192021d8195d5132"
    assert got["d"] == DIAMOND_D


def test_rshift_returns_the_right_side_for_chaining():
    dag = Dag()
    a, b, c = (dag.task(n, {}) for n in "abc")
    assert (a >> b) is b
    b >> c
    assert list(c.deps) == ["b"]
    assert (c << a) is a
    assert sorted(c.deps) == ["a", "b"]


def test_meta_and_task_names_do_not_change_ids():
    one = Dag({"schedule": "@daily"})
    one.task("x", {"command": "echo"})
    two = Dag({"schedule": "@hourly", "owner": "me"})
    two.task("y", {"command": "echo"})
    assert outputs(one)["x"] == outputs(two)["y"]


def test_save_and_load_round_trip(tmp_path):
    dag = diamond(by_shift)
    path = dag.save(tmp_path / "d.alamode")
    pipeline = load(path)
    assert pipeline.encode() == dag.encode()
    assert pipeline.order == ("a", "b", "c", "d")
    assert pipeline.upstream("d") == ("b", "c")
    assert pipeline.downstream("a") == ("b", "c")
    assert pipeline.descendants("a") == {"b", "c", "d"}
    assert [p.name for p in tmp_path.iterdir()] == ["d.alamode"]


def test_loaded_pipeline_is_immutable():
    pipeline = load(diamond(by_shift).bencode())
    with pytest.raises(TypeError):
        pipeline["a"].spec["command"] = "rm -rf /"
    with pytest.raises(AttributeError):
        pipeline["a"].output = "0" * 64


# --- mistakes -------------------------------------------------------------------------


def test_cycle_lists_its_tasks():
    dag = Dag()
    a, b, c = (dag.task(n, {}) for n in "abc")
    d = dag.task("d", {})
    a >> b >> c >> a
    d.add_dep(a)
    with pytest.raises(CycleError, match=r"dependency cycle: a -> c -> b -> a") as info:
        dag.encode()
    assert info.value.cycle == ["a", "c", "b"]


def test_self_dependency():
    dag = Dag()
    a = dag.task("a", {})
    with pytest.raises(DependencyError, match=r"task 'a': a task cannot depend on itself"):
        a.add_dep(a)


def test_dependency_on_another_dag():
    one, two = Dag(), Dag()
    a = one.task("a", {})
    b = two.task("b", {})
    with pytest.raises(DependencyError, match=r"task 'b': depends on 'a', a task of another Dag"):
        b.add_dep(a)


def test_dependency_on_unknown_name():
    dag = Dag()
    a = dag.task("a", {})
    with pytest.raises(DependencyError, match=r"task 'a': depends on unknown task 'zz'"):
        a.add_dep("zz")


def test_dependency_on_something_else():
    dag = Dag()
    a = dag.task("a", {})
    with pytest.raises(DependencyError, match=r"must be a Task .* not int"):
        a.add_dep(3)


def test_duplicate_task_name():
    dag = Dag()
    dag.task("a", {})
    with pytest.raises(TaskNameError, match=r"task 'a': a task of this name already exists"):
        dag.task("a", {"other": "spec"})


@pytest.mark.parametrize("name", ["has space", "slash/y", "", "naïve", "semi;colon", "$(x)"])
def test_invalid_task_names(name):
    with pytest.raises(TaskNameError, match=r"not a valid Airflow task id"):
        Dag().task(name, {})


def test_task_name_length_limit():
    Dag().task("x" * 250, {})
    with pytest.raises(TaskNameError, match=r"251 characters; Airflow allows at most 250"):
        Dag().task("x" * 251, {})


def test_task_name_must_be_a_string():
    with pytest.raises(TaskNameError, match=r"must be a str, not int"):
        Dag().task(7, {})


@pytest.mark.parametrize("key", ["inputs", "output"])
def test_reserved_spec_keys(key):
    with pytest.raises(SpecValueError, match=rf"key 'tasks.t.{key}': '{key}' is reserved"):
        Dag().task("t", {key: "x"})


def test_reserved_key_added_after_creation_is_caught_on_encode():
    dag = Dag()
    dag.task("t", {}).spec["output"] = "mine"
    with pytest.raises(SpecValueError, match=r"'output' is reserved"):
        dag.encode()


def test_spec_must_be_a_dictionary():
    with pytest.raises(SpecValueError, match=r"task 't': spec must be a dictionary, not list"):
        Dag().task("t", ["command"])


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        (0.5, "tasks.blur.env.RETRIES", "float has no bencode form"),
        (None, "tasks.blur.env.RETRIES", "NoneType has no bencode form"),
        ({1, 2}, "tasks.blur.env.RETRIES", "set has no bencode form"),
        (object(), "tasks.blur.env.RETRIES", "object has no bencode form"),
        (True, "tasks.blur.env.RETRIES", "bool has no bencode form distinct from int"),
        ([1, [2, 1.5]], r"tasks.blur.env.RETRIES\[1\]\[1\]", "float has no bencode form"),
        ({3: "x"}, "tasks.blur.env.RETRIES", "dictionary key 3 is a int; keys must be str"),
    ],
)
def test_values_without_bencode_form_name_the_key_path(value, path, reason):
    spec = {"command": "blur", "env": {"RETRIES": value}}
    with pytest.raises(SpecValueError, match=rf"task 'blur': key '{path}': {reason}"):
        Dag().task("blur", spec)


def test_bad_value_set_after_creation_is_caught_on_encode():
    dag = Dag()
    dag.task("blur", {"env": {}}).spec["env"]["RETRIES"] = 1.0
    with pytest.raises(SpecValueError, match=r"key 'tasks.blur.env.RETRIES': float"):
        dag.encode()


def test_bad_meta_value():
    with pytest.raises(SpecValueError, match=r"key 'meta.catchup': bool has no bencode form"):
        Dag({"catchup": False}).encode()


def test_every_error_shares_one_root():
    for cls in (CycleError, DependencyError, SpecValueError, TaskNameError):
        assert issubclass(cls, AlamodeError)


def nested(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_up_to_the_limit_round_trips():
    dag = Dag()
    dag.task("deep", {"v": nested(63)})
    assert load(dag.bencode()).encode() == dag.encode()


def test_nesting_past_the_limit_is_refused_not_a_recursion_error():
    with pytest.raises(SpecValueError, match=r"key 'tasks.deep.v': nested deeper than 64"):
        Dag().task("deep", {"v": nested(5000)})
