# The image every Airflow service of docker-compose.yaml runs: Airflow's own image with
# alamode-airflow installed (its entry points register the plugin).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}
COPY --chown=airflow:0 setup.cfg pyproject.toml README.md constraints.txt /opt/alamode/
COPY --chown=airflow:0 a_la_mode /opt/alamode/a_la_mode
COPY --chown=airflow:0 alamode_airflow /opt/alamode/alamode_airflow
RUN pip install --no-cache-dir -c /opt/alamode/constraints.txt \
        "/opt/alamode[examples,s3,celery,postgres,openlineage]" "apache-airflow==3.3.2"
