"""The chart ships the Render CRD in crds/ (Helm installs it before anything else, never
upgrades or deletes it). It is a copy of the generated crds/render.yaml: both must be what the
generator prints now."""

from __future__ import annotations

import subprocess
import sys

from tests.chart import chart


def test_the_charts_crd_is_what_the_generator_prints() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "roughy.kube.crd"], capture_output=True, text=True, check=True, cwd=chart.ROOT
    ).stdout
    copy = (chart.CHART / "crds" / "render.yaml").read_text()
    assert copy == generated, (
        "charts/roughy/crds/render.yaml is stale: python -m roughy.kube.crd > charts/roughy/crds/render.yaml"
    )


def test_the_chart_has_no_other_crds() -> None:
    assert sorted(p.name for p in (chart.CHART / "crds").iterdir()) == ["render.yaml"]
