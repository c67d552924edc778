# Conjunction in a container: the `conjunction` command as an unprivileged user, its SQLite file
# (and .env, and the git cache) on the /data volume. See docs/deploy.md; compose.yaml runs it on
# PostgreSQL.
#
#   docker build -t conjunction .
#   docker run -p 3000:3000 -v conjunction:/data -e CONJUNCTION_PUBLIC_URL=https://… conjunction

ARG PYTHON_IMAGE=python:3.11-slim

# Stage 1: the project's wheel and the wheels of everything it needs.
FROM ${PYTHON_IMAGE} AS build
RUN python -m venv /build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY conjunction ./conjunction
RUN /build/bin/pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: those wheels installed offline; no compiler, no source tree.
FROM ${PYTHON_IMAGE}
# git (and ssh for ssh:// URLs) reads the projects of `conjunction project add`
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 conjunction \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin conjunction \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /wheels /wheels
RUN python -m venv /opt/conjunction \
    && /opt/conjunction/bin/pip install --no-cache-dir --no-index --find-links /wheels conjunction \
    && rm -rf /wheels
ENV PATH=/opt/conjunction/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    CONJUNCTION_DATABASE_URL=sqlite:////data/conjunction.db
# .env (written by the GitHub App setup) and the git cache are kept in the working directory
WORKDIR /data
VOLUME /data
USER 10001:10001
EXPOSE 3000
# /healthz answers 200 while the database takes writes, 503 otherwise
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["conjunction"]
CMD ["serve"]
