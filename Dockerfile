# syntax=docker/dockerfile:1
# One image for every service. The entrypoint is the `hookpost` console script, so:
#   docker run IMAGE migrate
#   docker run IMAGE api --host 0.0.0.0 --port 8000
#   docker run IMAGE dispatcher
#   docker run IMAGE sender
# Kubernetes (deploy/k8s) and compose.yaml run it exactly like that.

ARG PYTHON_IMAGE=python:3.11-slim

# builder: install hookpost and its dependencies into a self-contained venv.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY cli ./cli
COPY libs ./libs
COPY services ./services
# A regular (non-editable) install: the source, with the SQL migrations as package data,
# lands in the venv's site-packages and the `hookpost` script in /opt/venv/bin.
RUN pip install --upgrade pip \
 && pip install . \
 && python -m compileall -q /opt/venv/lib

# runtime: the venv only, run by an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 hookpost \
 && useradd --system --uid 10001 --gid hookpost --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin hookpost
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without resolving names.
USER 10001:10001
# api (its --port), and the ops port of dispatcher and sender (HOOKPOST_OPS_PORT).
EXPOSE 8000 9100
ENTRYPOINT ["hookpost"]
CMD ["--help"]
