"""Airflow DAG file of collage.alamode, written by `alamode encode`: encoding
the pipeline again rewrites it, so do not edit it.

4 tasks; sha256 of the file:
c56d99fcad4a57724fa1e3136365bbf2f13fc1e589caf14bc990793ad1865496

    download_images  6075b3951568
    blur             82695e5805a9  <- download_images
    edge_enhance     7a764d984ce6  <- download_images
    collage          566a13d45eee  <- blur, edge_enhance
"""

from alamode_airflow.loader import dag_from

dag = dag_from(__file__, "collage.alamode")
