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
    ROUGHY_HOST=0.0.0.0
RUN groupadd --system --gid 10001 roughy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin roughy
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["roughy"]
CMD ["serve"]
