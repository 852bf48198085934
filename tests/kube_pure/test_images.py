"""The two Dockerfiles, read as text: Docker cannot run on these machines, so the images are
NOT built here (CI builds them where Docker exists). What can be checked without Docker is:
base images, a non-root numeric USER in the final stage (runAsNonRoot needs a number to check),
exec-form entrypoints, and that the encoder image installs exactly what `roughy-encode` imports.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roughy.kube.jobs import JobSettings

ROOT = Path(__file__).resolve().parents[2]
API_DOCKERFILE = ROOT / "Dockerfile"
ENCODER_DOCKERFILE = ROOT / "images" / "encoder" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    )
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(base=words[0], name=words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str | None) -> list[str]:
    assert args is not None and args.startswith("["), f"not exec form: {args!r} (a shell would be PID 1)"
    value = json.loads(args)
    assert isinstance(value, list)
    return value


def assert_non_root(stage: Stage) -> str:
    user = stage.last("USER")
    assert user, "the final stage sets no USER: the container would run as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: use a numeric non-root uid"
    assert not gid or (gid.isdigit() and int(gid) != 0), user
    return uid


def run_commands(stage: Stage) -> str:
    return " && ".join(stage.all("RUN"))


# --- API and operator image -----------------------------------------------------------------


def test_api_image_is_multi_stage_python_slim() -> None:
    stages = parse(API_DOCKERFILE)
    assert len(stages) >= 2
    assert all(stage.base == "python:3.11-slim" for stage in stages)
    build, final = stages[0], stages[-1]
    # the API and the operator talk to Kubernetes, S3 and PostgreSQL
    assert "pip install '.[kubernetes,postgres]'" in run_commands(build)
    assert "pip install" not in run_commands(final)  # nothing built in the runtime stage
    assert any(args.startswith(f"--from={build.name}") for args in final.all("COPY"))


def test_api_image_runs_roughy_as_non_root() -> None:
    final = parse(API_DOCKERFILE)[-1]
    assert assert_non_root(final) == str(JobSettings(image="x").run_as_user)
    assert exec_form(final.last("ENTRYPOINT")) == ["roughy"]


# --- encoder image --------------------------------------------------------------------------


def test_encoder_image_is_debian_ffmpeg() -> None:
    stages = parse(ENCODER_DOCKERFILE)
    assert all(stage.base == "debian:bookworm-slim" for stage in stages)
    final = stages[-1]
    apt = run_commands(final)
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists" in apt
    assert "ffmpeg" in shlex.split(apt.split("apt-get install", 1)[1].split("&&")[0])
    assert "ROUGHY_FFMPEG=/usr/bin/ffmpeg" in " ".join(final.all("ENV"))


def test_encoder_image_runs_roughy_encode_as_the_jobs_user() -> None:
    final = parse(ENCODER_DOCKERFILE)[-1]
    assert assert_non_root(final) == str(JobSettings(image="x").run_as_user)  # the Job's runAsUser
    assert exec_form(final.last("ENTRYPOINT")) == ["roughy-encode"]


def encoder_requirements() -> list[str]:
    """The requirement strings the encoder image pip-installs, apart from the package itself."""
    commands = run_commands(parse(ENCODER_DOCKERFILE)[0])
    installs = [shlex.split(part.split("pip install", 1)[1]) for part in commands.split("&&") if "pip install" in part]
    assert ["--no-deps", "."] in installs, "install the package without its API dependencies"
    return [word for words in installs if words != ["--no-deps", "."] for word in words]


def encoder_imports() -> set[str]:
    """Third-party distributions `roughy-encode` imports (excluding the package and setuptools'
    editable-install hooks), found by importing it in a fresh interpreter."""
    code = (
        "import sys, importlib.metadata as md, roughy.encoder.cli\n"
        "dists = md.packages_distributions()\n"
        "mods = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "print(sorted({d for m in mods for d in dists.get(m, [])} - {'roughy', 'setuptools'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.replace("'", '"')))


def test_encoder_image_installs_what_roughy_encode_imports() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    required = encoder_imports()
    installed = encoder_requirements()
    assert required, "roughy-encode imports PyAV at least"
    for dist in required:
        spec = next((r for r in declared if re.match(rf"{re.escape(dist)}\b", r, re.IGNORECASE)), None)
        assert spec is not None, f"{dist} is imported by the encoder but not a dependency"
        assert spec in installed, f"the encoder image must install {spec!r} (as pyproject.toml says)"
    assert len(installed) == len(required), f"the encoder image installs more than it imports: {installed}"


# --- build context --------------------------------------------------------------------------


def test_dockerignore_is_an_allow_list_of_what_the_images_copy() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "start from nothing: .venv, .git and media stay out of the context"
    allowed = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    for dockerfile in (API_DOCKERFILE, ENCODER_DOCKERFILE):
        for stage in parse(dockerfile):
            for args in stage.all("COPY"):
                if args.startswith("--from"):
                    continue
                for source in args.split()[:-1]:
                    assert source.rstrip("/") in allowed, (
                        f"{dockerfile.name} copies {source}, which .dockerignore drops"
                    )


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, ENCODER_DOCKERFILE], ids=["api", "encoder"])
def test_no_secrets_or_latest_tags(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert ":latest" not in text
    assert not re.search(r"(?i)(secret|password|token)\s*=", text)
