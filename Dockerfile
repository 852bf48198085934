# syntax=docker/dockerfile:1
# The API and operator image: `roughy serve` runs the API, the operator runs from the same image
# with other arguments (the Helm chart sets them). Build from the repository root:
#   docker build -t roughy .
# Two stages: the build stage has pip's caches and the sdist build; the runtime stage gets only
# the finished virtualenv, and runs as an unprivileged numeric user (runAsNonRoot can check it).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY roughy ./roughy
RUN pip install '.[kubernetes,postgres]'

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROUGHY_HOST=0.0.0.0 \
    ROUGHY_DATA_DIR=/data \
    ROUGHY_PUBLIC_URL=http://localhost:8000
# /data is the embedded runtime's data directory (SQLite, media, signing key), owned by the
# service's user: a named volume mounted there starts as a copy of it, owner included, so
#   docker run -p 8000:8000 -v roughy-data:/data roughy
# works as it is. (A bind mount keeps the host directory's owner: make it writable by 10001.)
# It stays 0755 here, so that a pod run as another uid can still start in it; `roughy serve`
# makes its data directory 0700 when it starts.
# The Helm chart sets ROUGHY_DATA_DIR and ROUGHY_PUBLIC_URL itself and mounts no volume here.
RUN groupadd --system --gid 10001 roughy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin roughy \
 && mkdir /data \
 && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["roughy"]
CMD ["serve"]
