# Samverkan: a slim image that runs `samverkan run` as uid 10001, with data/ as a volume
# and the configuration as a mounted file and the environment. `make docker-test` builds
# and checks it (docker/test.sh).
#
# BASE is any image with python3 (3.11 or newer) and its venv module, bash and useradd:
# the official python:3.11-slim by default; docker/test.sh passes a stand-in built from
# Debian's packages where no registry can be reached. Both stages use the same BASE, so
# the virtualenv's interpreter links stay valid when it is copied across.
ARG BASE=python:3.11-slim

# ---- build: the virtualenv, in a stage of its own so that the sources, build/ and the
# egg-info never reach the image.
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /app/.venv \
    && /app/.venv/bin/pip install --quiet --upgrade pip
WORKDIR /src
# The dependencies first, read from pyproject.toml alone: a change to the code then
# reinstalls only the project itself, not the layer of libraries below it.
COPY pyproject.toml ./
RUN /app/.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
    && /app/.venv/bin/pip install --quiet -r /tmp/requirements.txt
COPY README.md ./
COPY bot ./bot
COPY plugins ./plugins
# Not editable: the package is copied into site-packages (with its locales), and pip
# compiles it to bytecode there, which keeps each health probe's start short. pip builds
# it with a setuptools of its own (build isolation); the old one that venv puts in is not
# needed at run time.
RUN /app/.venv/bin/pip install --quiet --no-deps . \
    && /app/.venv/bin/pip uninstall --quiet --yes setuptools

# ---- the image
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed uid and gid, so that an operator can give a host folder to it (README).
RUN groupadd --gid 10001 samverkan \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin samverkan
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY config ./config
COPY docker/entrypoint.sh docker/healthcheck.sh ./docker/
# data/ belongs to the bot; everything else stays root's and read-only to it.
RUN mkdir -p /app/data && chown samverkan:samverkan /app/data && chmod 0750 /app/data

ENV PATH="/app/.venv/bin:$PATH" \
    SAMVERKAN_CONFIG=/app/config/samverkan.toml

USER 10001:10001
VOLUME ["/app/data"]

# The running bot touches its heartbeat (beside the database) every 30 s, the first time
# as soon as it is ready. The probe finds the configuration the bot was started with
# (--config or SAMVERKAN_CONFIG) and asks `samverkan health --config` about it. Docker's
# first probe comes one interval after the start: 5 s, so that a bot is healthy within
# about 10 s (a probe takes 1-3 s: it starts Python and loads the configuration).
# `docker run --health-interval 30s` probes less often, at the cost of a later "healthy".
HEALTHCHECK --interval=5s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/app/docker/healthcheck.sh"]

# The entrypoint checks what an operator mounts (one line and exit 2 when the bot cannot
# read its configuration or write its folder), then execs samverkan as PID 1, which stops
# gracefully on docker stop's SIGTERM. Arguments are samverkan's: `run --config PATH`,
# `check-config`, `health`...; any other command runs as given.
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["run"]
