"""Local storage's signed URLs sign the storage key itself: whatever URL a request arrives on,
the route verifies the key it will read or write, and only that key passes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from roughy.adapters.storage.local import LocalStorage
from roughy.core.errors import Forbidden


def signed(storage: LocalStorage, method: str, key: str, filename: str = "") -> tuple[str, str]:
    url, _ = storage.signed_url(method, key, 60, filename)
    query = parse_qs(urlsplit(url).query)
    return query["expires"][0], query["sig"][0]


def test_a_signature_is_good_for_its_own_key_method_and_name_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, signing_key=b"k", public_url="http://127.0.0.1:1")
    expires, sig = signed(storage, "GET", "renders/rnd_a/output.mp4", "talk.mp4")
    storage.verify("GET", "renders/rnd_a/output.mp4", expires, sig, "talk.mp4")
    for method, key, name in (
        ("GET", "renders/rnd_b/output.mp4", "talk.mp4"),
        ("GET", "assets/ast_b/video", "talk.mp4"),
        ("PUT", "renders/rnd_a/output.mp4", "talk.mp4"),
        ("GET", "renders/rnd_a/output.mp4", "other.mp4"),
    ):
        with pytest.raises(Forbidden):
            storage.verify(method, key, expires, sig, name)


@pytest.mark.parametrize(
    "key",
    ["renders/rnd_a/../../assets/ast_b/video", "renders/rnd_a/output.mp4#/../x", "/etc/passwd", "renders//x",
     "renders/./x", "renders/rnd_a/output.mp4%23"],
)
def test_keys_that_a_path_could_read_differently_are_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path, signing_key=b"k", public_url="http://127.0.0.1:1")
    with pytest.raises(Forbidden):
        storage.signed_url("GET", key, 60)
    with pytest.raises(Forbidden):
        storage.verify("GET", key, "9999999999", "0" * 64)
