"""The seed README's collage pipeline, written in the a-la-mode DSL.

Encode it with ``alamode encode examples/collage/pipeline.py --dags-folder dags``.
"""

from a_la_mode import Dag

# Meta never changes an output ID. "cwd" is where the commands run, relative to the
# encoded file (dags/collage.alamode): the Airflow engine's local runner stands in for
# the "collage" image with this folder.
dag = Dag({"schedule": "@daily", "dag_id": "collage", "cwd": "../examples/collage"})

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
    {"image": "collage", "sha": "1qe34", "command": "python transform_images.py edge_enhance"},
)
dag.task(
    "collage",
    {"image": "collage", "sha": "1qe34", "command": "python collage.py"},
)

dag.download_images >> [dag.blur, dag.edge_enhance] >> dag.collage
