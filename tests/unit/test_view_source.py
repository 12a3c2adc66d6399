"""Which encoded file the api-server reads for a DAG: only one under its dags folder,
whatever the serialized DAG's ``fileloc`` says, and found once, not on every page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from alamode_airflow import loader
from alamode_airflow.view import source


@dataclass
class Serialized:
    """The fields of a serialized DAG that ``find_file`` reads."""

    dag_id: str
    fileloc: str
    doc_md: str = "Built by alamode-airflow from `collage.alamode`"


@pytest.fixture
def dags(tmp_path, monkeypatch, collage) -> Path:
    folder = tmp_path / "dags"
    (folder / "sub").mkdir(parents=True)
    collage.save(folder / "sub" / "collage.alamode")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(source, "_FOUND", {}, raising=False)
    return folder


def test_a_fileloc_outside_the_dags_folder_is_not_followed(dags, tmp_path, collage):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    collage.save(elsewhere / "collage.alamode")
    with pytest.raises(source.NotOurs, match="not parsed from the dags folder"):
        source.find_file(Serialized("collage", str(elsewhere / "collage.py")))
    (dags / "collage.alamode").symlink_to(elsewhere / "collage.alamode")  # beside the module
    found = source.find_file(Serialized("collage", str(dags / "loader.py")))
    assert found == dags / "sub" / "collage.alamode"  # not the link's target


def test_a_found_file_is_not_searched_for_again(dags, monkeypatch, collage):
    walks, find_files = [], loader.find_files

    def counted(folder):
        walks.append(folder)
        return find_files(folder)

    monkeypatch.setattr(loader, "find_files", counted)
    dag = Serialized("collage", str(dags / "loader.py"))
    for _ in range(3):
        assert source.find_file(dag) == dags / "sub" / "collage.alamode"
    assert len(walks) == 1
    collage.blur.spec["sha"] = "changed, so larger"
    collage.save(dags / "sub" / "collage.alamode")
    assert source.find_file(dag) == dags / "sub" / "collage.alamode"
    assert len(walks) == 2  # the file changed: found again
