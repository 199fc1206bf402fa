# driftline's container image, used by docker-compose.yml and the helm chart (helm/).
#
# Two stages: `build` installs the locked dependencies (requirements-lock.txt, hashes
# checked) and driftline itself into /opt/driftline; the runtime stage copies only that
# virtualenv onto the same slim base and runs as an unprivileged user. The base is pinned
# to an exact Python patch release and Debian release; pin it by digest too where your
# registry policy asks for it (`FROM python:3.11.11-slim-bookworm@sha256:<digest>`).
# confluent-kafka's wheel bundles librdkafka with TLS and SASL (SCRAM, PLAIN, OAUTHBEARER,
# GSSAPI), so the image needs no system Kafka or OpenSSL packages for security.
#
#   docker build -t driftline:0.1.0 .
#   docker run --rm driftline:0.1.0 --help
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/driftline
WORKDIR /src
COPY requirements-lock.txt ./
# the lock also pins the build backend (setuptools, wheel): nothing unpinned is fetched
RUN /opt/driftline/bin/pip install --require-hashes --no-deps -r requirements-lock.txt
COPY pyproject.toml README.md ./
COPY sketches ./sketches
COPY streams ./streams
COPY alerts ./alerts
COPY driftline ./driftline
RUN /opt/driftline/bin/pip install --no-deps --no-build-isolation . \
 && /opt/driftline/bin/pip uninstall -y pytest pytest-timeout hypothesis mypy ruff \
    types-PyYAML iniconfig pluggy \
 && /opt/driftline/bin/pip check \
 && /opt/driftline/bin/driftline --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Streaming drift monitoring for ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 driftline \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin driftline
COPY --from=build /opt/driftline /opt/driftline
ENV PATH=/opt/driftline/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DRIFTLINE_HTTP_HOST=0.0.0.0
# read-only root filesystem friendly: nothing is written outside mounted volumes / /tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["driftline"]
CMD ["worker"]
