from __future__ import annotations

import pytest

from a_la_mode import Dag


@pytest.fixture
def collage() -> Dag:
    """The seed's collage pipeline, connected with the shift operators."""
    dag = Dag({"schedule": "@daily", "dag_id": "collage"})
    dag.task("download_images", {"image": "collage", "sha": "1qe34", "command": "python dl.py"})
    dag.task("blur", {"image": "collage", "sha": "6f09d", "command": "python t.py blur"})
    dag.task("edge_enhance", {"image": "collage", "sha": "1qe34", "command": "python t.py edge"})
    dag.task("collage", {"image": "collage", "sha": "1qe34", "command": "python collage.py"})
    dag.download_images >> [dag.blur, dag.edge_enhance] >> dag.collage
    return dag
