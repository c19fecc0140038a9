# Samverkan: slim image, non-root, data/ as a volume, configuration by mounted file and
# environment. It installs the project as `make run` does: a virtualenv with the package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 samverkan

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY plugins ./plugins
COPY config ./config
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --quiet /app \
    && mkdir -p /app/data \
    && chown -R samverkan:samverkan /app/data

ENV PATH="/app/.venv/bin:$PATH" \
    SAMVERKAN_CONFIG=/app/config/samverkan.toml

USER samverkan
VOLUME ["/app/data"]

# The running bot touches data/heartbeat every 30 s; `samverkan health` checks its age.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["samverkan", "health"]

CMD ["samverkan", "run"]
