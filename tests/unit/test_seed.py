"""The seed README's example, run as written, reproduces the SPEC's reference IDs."""

from __future__ import annotations

import pytest
from deepdiff import DeepDiff

from a_la_mode import Dag, Task, pp

DOWNLOAD = "6075b3951568e2f31df204a59eb92bbb17d84e6b49f1275216bc0b6deb0e223d"
BLUR = "82695e5805a9cd091e42ae94469efe77a90907c96190c793cee3c7d58dc2bbe0"
EDGE = "7a764d984ce66d23a69c87645b47fcf7be79711f40be95fb631308ee01ca2a04"
COLLAGE = "566a13d45eeebdefc50de118f5031278b20171ce76deb51791a4f084668e6d16"
BLUR_CHANGED = "4df7200d1f836f7372ce01761c9cb9e0d2bc7d1abc7ee9c1abe8dc7df9a67e5e"
COLLAGE_CHANGED = "25adad1924719ff4d5d2c3f4839f0ff1b4e21537c3c358f7d10b5e5d7c9c6de5"


def seed_dag() -> Dag:
    # Verbatim from the seed README (only the imports are at module level).
    dag = Dag({"schedule": "@daily"})

    dag.task(
        "download_images",
        {"image": "collage", "sha": "1qe34", "command": "python dl_images.py"},
    )

    dag.task(
        "blur",
        {"image": "collage", "sha": "6f09d", "command": "python transform_images.py blur"},
    )

    dag.task(
        "edge_enhance",
        {
            "image": "collage",
            "sha": "1qe34",
            "command": "python transform_images.py edge_enhance",
        },
    )

    dag.task(
        "collage",
        {"image": "collage", "sha": "1qe34", "command": "python collage.py"},
    )

    for task in [dag.blur, dag.edge_enhance]:
        task.add_dep(dag.download_images)

    for task in [dag.blur, dag.edge_enhance]:
        dag.collage.add_dep(task)
    return dag


INITIAL = {
    "meta": {"schedule": "@daily"},
    "tasks": {
        "blur": {
            "command": "python transform_images.py blur",
            "image": "collage",
            "inputs": {"download_images": DOWNLOAD},
            "output": BLUR,
            "sha": "6f09d",
        },
        "collage": {
            "command": "python collage.py",
            "image": "collage",
            "inputs": {"blur": BLUR, "edge_enhance": EDGE},
            "output": COLLAGE,
            "sha": "1qe34",
        },
        "download_images": {
            "command": "python dl_images.py",
            "image": "collage",
            "inputs": {},
            "output": DOWNLOAD,
            "sha": "1qe34",
        },
        "edge_enhance": {
            "command": "python transform_images.py edge_enhance",
            "image": "collage",
            "inputs": {"download_images": DOWNLOAD},
            "output": EDGE,
            "sha": "1qe34",
        },
    },
}


def test_initial_encoding_is_the_seeds():
    assert seed_dag().encode() == INITIAL


def test_changed_sha_changes_blur_and_collage_only():
    dag = seed_dag()
    encoded_dag = dag.encode()
    dag.blur.spec["sha"] = "qwetr3"
    encoded_changed_dag = dag.encode()
    outputs = {name: t["output"] for name, t in encoded_changed_dag["tasks"].items()}
    assert outputs == {
        "download_images": DOWNLOAD,
        "blur": BLUR_CHANGED,
        "edge_enhance": EDGE,
        "collage": COLLAGE_CHANGED,
    }
    assert encoded_changed_dag["tasks"]["collage"]["inputs"] == {
        "blur": BLUR_CHANGED,
        "edge_enhance": EDGE,
    }
    assert encoded_dag == INITIAL


def test_seed_deepdiff_shows_the_four_changed_values():
    dag = seed_dag()
    encoded_dag = dag.encode()
    dag.blur.spec["sha"] = "qwetr3"
    changed = DeepDiff(encoded_dag, dag.encode())
    assert changed == {
        "values_changed": {
            "root['tasks']['blur']['output']": {"new_value": BLUR_CHANGED, "old_value": BLUR},
            "root['tasks']['blur']['sha']": {"new_value": "qwetr3", "old_value": "6f09d"},
            "root['tasks']['collage']['inputs']['blur']": {
                "new_value": BLUR_CHANGED,
                "old_value": BLUR,
            },
            "root['tasks']['collage']['output']": {
                "new_value": COLLAGE_CHANGED,
                "old_value": COLLAGE,
            },
        }
    }


def test_pp_prints_like_the_seed(capsys):
    pp(seed_dag().encode())
    printed = capsys.readouterr().out
    assert printed.startswith("{ 'meta': {'schedule': '@daily'},\n  'tasks': { 'blur': {")
    assert f"'output': '{COLLAGE}'" in printed


def test_dag_attribute_access_returns_the_task():
    dag = seed_dag()
    assert isinstance(dag.blur, Task)
    assert dag.blur is dag["blur"]
    with pytest.raises(AttributeError, match=r"no task or attribute 'sharpen'"):
        _ = dag.sharpen
