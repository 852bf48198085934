"""The API image's embedded default, read from the Dockerfile (no Docker engine here: CI's e2e
and release workflows build it). `docker run -p 8000:8000 -v roughy-data:/data roughy` works
only if the final stage declares /data a volume, makes it the data directory, and gives it to
the user the service runs as: a named volume starts as a copy of the image's directory, owner
included, and an unwritable one fails the first start."""

from __future__ import annotations

import shlex

from roughy.kube.jobs import SCRATCH_DIR
from tests.kube_pure.test_images import API_DOCKERFILE, ENCODER_DOCKERFILE, assert_non_root, exec_form, parse


def env_of(args: list[str]) -> dict[str, str]:
    """`ENV A=1 B=2` instructions (the key=value form) as a dict."""
    pairs = [word.split("=", 1) for line in args for word in shlex.split(line)]
    return {key: value for key, value in pairs}


def test_the_data_directory_is_a_volume_owned_by_the_service_user() -> None:
    final = parse(API_DOCKERFILE)[-1]
    uid = assert_non_root(final)
    data_dir = env_of(final.all("ENV"))["ROUGHY_DATA_DIR"]
    assert data_dir.startswith("/"), "an absolute data directory: it must not depend on the working directory"
    assert data_dir in exec_form(final.last("VOLUME")), f"{data_dir} is not declared a VOLUME"
    commands = [shlex.split(part) for run in final.all("RUN") for part in run.split("&&")]
    chowned = [words[-1] for words in commands if words[:1] == ["chown"] and words[1].split(":")[0] == uid]
    assert data_dir in chowned, f"{data_dir} is not chowned to the USER {uid} in the final stage: {commands}"
    assert final.last("WORKDIR") == data_dir


def test_the_image_listens_where_the_readme_maps_the_port() -> None:
    final = parse(API_DOCKERFILE)[-1]
    env = env_of(final.all("ENV"))
    assert env["ROUGHY_HOST"] == "0.0.0.0", "in a container, listening on loopback answers nobody"
    assert "8000" in final.all("EXPOSE") and env["ROUGHY_PUBLIC_URL"].endswith(":8000")


def test_the_encoder_starts_in_the_jobs_scratch_volume() -> None:
    assert parse(ENCODER_DOCKERFILE)[-1].last("WORKDIR") == SCRATCH_DIR
