"""The release workflow (.github/workflows/release.yml), which only runs on a pushed tag: read
as data, and its two scripts that can go wrong quietly run here. A renamed Dockerfile or chart
directory, a widened permission or a tag that is not the package's version fails this file
rather than a release."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from roughy import __version__

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
HELM = shutil.which("helm") or shutil.which("helm", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(workflow["jobs"])


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in jobs(workflow).items() for step in job["steps"]]


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def step_named(workflow: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [step for _, step in steps(workflow) if step.get("name", "").startswith(prefix)]
    assert len(found) == 1, f"one step named {prefix!r}"
    return found[0]


def run_step(step: dict[str, Any], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A `run:` step as the runner runs it (bash -e), in `cwd`."""
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_it_runs_on_version_tags_only(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers == {"push": {"tags": ["v*"]}}


def test_every_job_asks_for_only_the_write_access_its_steps_use(workflow):
    assert workflow["permissions"] == {}, "nothing granted by default"
    for name, job in jobs(workflow).items():
        granted = job.get("permissions")
        assert granted is not None, f"job {name} must say what it needs"
        writes = {scope for scope, access in granted.items() if access == "write"}
        expected = set()
        if uses(job, "docker/login-action") or "helm push" in runs(job):
            expected.add("packages")
        if "gh release" in runs(job):
            expected.add("contents")
        if uses(job, "pypa/gh-action-pypi-publish"):
            expected.add("id-token")
        assert writes == expected, f"job {name} may write {writes}, uses {expected}"


def test_the_images_are_the_repositorys_two_dockerfiles_for_two_architectures(workflow):
    job = jobs(workflow)["images"]
    (build,) = uses(job, "docker/build-push-action")
    (meta,) = uses(job, "docker/metadata-action")
    matrix = job["strategy"]["matrix"]["include"]
    assert build["with"]["file"] == "${{ matrix.dockerfile }}"
    dockerfiles = {entry["dockerfile"] for entry in matrix}
    assert dockerfiles == {"Dockerfile", "images/encoder/Dockerfile"}
    assert all((ROOT / path).is_file() for path in dockerfiles), dockerfiles
    assert {"linux/amd64", "linux/arm64"} <= set(build["with"]["platforms"].split(","))
    assert build["with"]["push"] is True and build["with"]["context"] == "."
    assert build["with"]["tags"] == "${{ steps." + meta["id"] + ".outputs.tags }}"
    assert meta["with"]["images"].startswith("ghcr.io/")
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"], "the tag the chart's appVersion names"


def test_the_chart_is_packaged_from_the_chart_directory_at_the_tags_version(workflow):
    job = jobs(workflow)["chart"]
    package = re.search(r"helm package (\S+) (.*)", runs(job))
    assert package, "the chart job packages the chart"
    assert (ROOT / package.group(1) / "Chart.yaml").is_file(), f"{package.group(1)} is not the chart"
    assert '--version "$VERSION"' in package.group(2) and '--app-version "$VERSION"' in package.group(2)
    assert job["env"]["VERSION"] == "${{ needs.version.outputs.version }}"
    assert re.search(r'helm push "dist/roughy-\$VERSION\.tgz" "oci://\$IMAGES/charts"', runs(job))
    assert "images" in job["needs"], "the chart names images: they are pushed first"


def test_the_wheel_and_sdist_built_are_the_ones_released(workflow):
    built = jobs(workflow)["python"]
    assert "python -m build --outdir dist" in runs(built)
    (upload,) = uses(built, "actions/upload-artifact")
    release = jobs(workflow)["github-release"]
    (download,) = uses(release, "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"] and upload["with"]["path"].rstrip("/") == "dist"
    assert "gh release create" in runs(release) and "dist/*" in runs(release)
    pypi = jobs(workflow)["pypi"]
    assert pypi["if"] == "vars.PYPI_PUBLISH == 'true'" and pypi["environment"] == "pypi", "publishing is gated"


def test_actions_are_pinned_and_no_registry_but_ghcr_is_named(workflow):
    for job, step in steps(workflow):
        if "uses" in step:
            assert re.search(r"@(v\d+|release/v\d+|[0-9a-f]{40})$", step["uses"]), (job, step["uses"])
    hosts = set(re.findall(r"\b(?:[a-z0-9-]+\.)+(?:io|com|org|net|dev)\b", WORKFLOW.read_text()))
    assert hosts == {"ghcr.io"}, hosts


@pytest.mark.parametrize("tag,ok", [(f"v{__version__}", True), ("v999.0.0", False), (f"v{__version__}-rc.1", False)])
def test_the_release_stops_unless_the_tag_is_the_package_version(workflow, tmp_path, tag, ok):
    output = tmp_path / "github_output"
    done = run_step(step_named(workflow, "The tag is the package's version"), ROOT, GITHUB_REF_NAME=tag,
                    GITHUB_OUTPUT=str(output), GITHUB_REPOSITORY_OWNER="Acme")  # fmt: skip
    assert (done.returncode == 0) is ok, done.stderr
    if ok:
        assert output.read_text().split() == [f"version={__version__}", "owner=acme"]
    else:
        assert "::error::" in done.stderr and __version__ in done.stderr


def test_the_packaged_chart_runs_the_released_images(workflow, tmp_path):
    shutil.copytree(ROOT / "charts", tmp_path / "charts")
    env = {"IMAGES": "ghcr.io/acme", "VERSION": "9.8.7"}
    rewrite = run_step(step_named(workflow, "Point the chart's default images"), tmp_path, **env)
    assert rewrite.returncode == 0, rewrite.stderr
    values = yaml.safe_load((tmp_path / "charts/roughy/values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/acme/roughy"
    assert values["encoder"]["image"]["repository"] == "ghcr.io/acme/roughy-encoder"
    if HELM is None:
        pytest.skip("no helm binary (make installs one into .venv/bin): the package step is not run")
    path = f"{Path(HELM).parent}:{os.environ['PATH']}"
    package = run_step(step_named(workflow, "Package the chart"), tmp_path, PATH=path, **env)
    assert package.returncode == 0, package.stderr
    test_values = ROOT / "tests" / "chart" / "values-test.yaml"  # a database URL, which the chart requires
    rendered = subprocess.run([HELM, "template", "r", str(tmp_path / "dist/roughy-9.8.7.tgz"), "-f", str(test_values)],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert 'image: "ghcr.io/acme/roughy:9.8.7"' in rendered
    assert '"image": "ghcr.io/acme/roughy-encoder:9.8.7"' in rendered, "the encoder Jobs' image (operator settings)"
