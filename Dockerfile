# The user code of backfill_pipeline: one image for every Dagster process (code server, webserver,
# daemon, run workers) and the REST API; docker-compose.yaml and deploy/helm-values.yaml say which
# command each runs. Dagster's storage is PostgreSQL (DAGSTER_PG_* at run time, never baked in).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home \
    BACKFILL_DATA_ROOT=/data \
    BACKFILL_CODE_SERVER_HOST=code-server \
    BACKFILL_CODE_SERVER_PORT=4000

WORKDIR /opt/backfill_pipeline
COPY pyproject.toml README.md dagster.yaml workspace.yaml ./
COPY deploy/ deploy/
COPY backfill_pipeline/ backfill_pipeline/
RUN pip install . \
    && mkdir -p "$DAGSTER_HOME" /data \
    && cat dagster.yaml deploy/dagster-postgres.yaml > "$DAGSTER_HOME/dagster.yaml" \
    && useradd --system --uid 10001 --home-dir /opt/dagster backfill \
    && chown -R backfill "$DAGSTER_HOME" /data
USER backfill

# The code server by default (docker-compose names each process's command; Dagster's chart runs
# `dagster api grpc` with deploy/helm-values.yaml's dagsterApiGrpcArgs instead).
EXPOSE 4000 3000 8080
CMD ["python", "-m", "backfill_pipeline.codeserver", "-m", "backfill_pipeline.definitions", "-h", "0.0.0.0", "-p", "4000", "--location-name", "backfill_pipeline.definitions"]
