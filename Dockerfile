# One image for all four npsloop services; the command picks the service:
#   docker run npsloop:latest worker classifier
#   docker run npsloop:latest migrate
#   docker run npsloop:latest topics
# docker-compose.yml runs it that way; settings come from NPSLOOP_* variables.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a virtualenv holding npsloop, its dependencies and the postgres extra ---
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, read from pyproject.toml, so that a code change does not
# reinstall them (this layer is rebuilt only when pyproject.toml changes).
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# Then the package itself. README.md is pyproject's readme but optional for the build;
# the wildcard lets COPY succeed without it (pyproject.toml always matches).
COPY pyproject.toml README.md* ./
COPY shared ./shared
COPY services ./services
# --no-deps: the dependencies, the postgres extra (psycopg2-binary) included, are in already.
RUN pip install --no-deps .

# --- final: the runtime, without build leftovers, as a non-root user ---
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NPSLOOP_WEB_HOST=0.0.0.0 \
    NPSLOOP_DATA_DIR=/var/lib/npsloop

RUN groupadd --system --gid 10001 npsloop \
 && useradd --system --uid 10001 --gid npsloop --home-dir /var/lib/npsloop \
        --no-create-home --shell /usr/sbin/nologin npsloop \
 && mkdir -p /var/lib/npsloop \
 && chown npsloop:npsloop /var/lib/npsloop

COPY --from=builder /opt/venv /opt/venv

USER npsloop
WORKDIR /var/lib/npsloop

# ingest (the public edge), classifier, notifier, aggregator: /health, /ready, /metrics.
EXPOSE 6066 6067 6068 6069

ENTRYPOINT ["npsloop"]
CMD ["worker", "ingest"]
