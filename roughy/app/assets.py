"""Assets and their parts (SPEC 3): create with upload targets, receive and complete parts,
read, list, delete. Processing a completed part is `roughy.app.processing`.

The upload size limit is checked where every runtime passes: when the client completes the
part (on Kubernetes the bytes go straight to S3 through a presigned PUT, which cannot enforce
a limit); the embedded upload route also stops a stream as soon as it passes the limit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path, PurePath

import anyio

from roughy.app.idempotency import Idempotency, fingerprint
from roughy.core.errors import InvalidState, NotFound, PayloadTooLarge, RateLimited, ValidationFailed
from roughy.core.events import asset_events
from roughy.core.ids import new_id, now
from roughy.core.keys import asset_prefix, part_key, poster_key, upload_key
from roughy.core.lifecycle import WAITING, part_uploaded
from roughy.core.models import Asset, AssetKind, AssetState, PartName, PartState
from roughy.core.ports import ServedFiles, Storage, Store

SEAL_STRIPES = 64


class AssetService:
    def __init__(
        self,
        store: Store,
        storage: Storage,
        *,
        stop_renders: Callable[[list[str]], None],
        max_upload_bytes: int = 5 * 2**30,
        max_uploading: int = 50,
        upload_ttl: int = 3600,
        poster_ttl: int = 900,
        wake: Callable[[], None] = lambda: None,
    ):
        self.store = store
        self.storage = storage
        self.stop_renders = stop_renders
        self.max_upload_bytes = max_upload_bytes
        self.max_uploading = max_uploading
        self.upload_ttl = upload_ttl
        self.poster_ttl = poster_ttl
        self.wake = wake
        # Per asset, uploads landing and parts completing take turns (this API process serves
        # its own uploads only with local storage, where it owns the data directory). Striped:
        # a complete that copies a big object on S3 holds up only the assets of its stripe.
        self._seals = [threading.Lock() for _ in range(SEAL_STRIPES)]

    def create(
        self,
        account_id: str,
        kind: AssetKind,
        filename: str,
        client_audio: bool,
        *,
        idempotency_key: str | None = None,
    ) -> Asset:
        """A new asset awaiting its uploads; with `idempotency_key`, a retry answers the first
        try's asset (`roughy.app.idempotency`)."""
        request = fingerprint("create_asset", {"kind": kind, "filename": filename, "client_audio": client_audio})
        return Idempotency(self.store).once(
            account_id,
            idempotency_key,
            request,
            new_id("ast"),
            lambda asset_id: self._create(asset_id, account_id, kind, filename, client_audio),
            lambda asset_id: self.store.get_asset(asset_id, account_id),
        )

    def _create(self, asset_id: str, account_id: str, kind: AssetKind, filename: str, client_audio: bool) -> Asset:
        if client_audio and kind is AssetKind.AUDIO:
            raise ValidationFailed("client_audio applies to video assets only", param="client_audio")
        if self.store.count_assets(account_id, WAITING) >= self.max_uploading:
            raise RateLimited(
                f"{self.max_uploading} assets are already waiting for their uploads or for credit; "
                "complete or delete some",
                retry_after=60,
            )
        video = kind is AssetKind.VIDEO
        asset = Asset(
            id=asset_id,
            account_id=account_id,
            kind=kind,
            filename=filename,
            client_audio=client_audio,
            state=AssetState.UPLOADING,
            video_part=PartState.AWAITING_UPLOAD if video else None,
            audio_part=PartState.AWAITING_UPLOAD if (not video or client_audio) else None,
            created_at=now(),
        )
        self.store.insert_asset(asset)
        return asset

    def get(self, account_id: str, asset_id: str) -> Asset:
        asset = self.store.get_asset(asset_id, account_id)
        if asset is None:
            raise NotFound(f"no such asset: {asset_id}")
        return asset

    def page(self, account_id: str, limit: int, starting_after: str | None) -> tuple[list[Asset], bool]:
        return self.store.list_assets(account_id, limit, starting_after)

    def upload_targets(self, asset: Asset) -> dict[str, dict[str, object]]:
        """A fresh signed upload target for each part still awaiting its upload."""
        return {
            part.value: self.storage.upload_target(upload_key(asset.id, part), self.upload_ttl)
            for part in asset.parts
            if asset.part_state(part) is PartState.AWAITING_UPLOAD
        }

    def poster(self, asset: Asset) -> tuple[str, datetime] | None:
        """A fresh signed URL of the asset's poster frame and its expiry; None while there is
        none (no video processed yet, an audio asset, or the poster could not be made)."""
        if asset.video is None or not asset.video.poster:
            return None
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(asset.filename).stem).strip("._") or "asset"
        return self.storage.download_url(poster_key(asset.id), f"{stem[:80]}-poster.jpg", self.poster_ttl)

    async def receive_part(
        self, files: ServedFiles, asset_id: str, part: PartName, chunks: AsyncIterator[bytes], length: int | None
    ) -> int:
        """An upload served by the API itself (local storage): streamed aside, then put in
        place only if the part still awaits its upload. Once `complete` is called the part's
        bytes are sealed: a PUT still streaming then is refused (409) and leaves nothing, so
        what was probed is what gets encoded. Past the limit: 413, nothing kept. Returns the
        bytes written."""
        asset = await anyio.to_thread.run_sync(self.store.get_asset, asset_id)
        if asset is None:
            raise NotFound("no such asset")
        if asset.part_state(part) is not PartState.AWAITING_UPLOAD:
            raise InvalidState(f"the {part.value} part is not awaiting an upload")
        if length is not None and length > self.max_upload_bytes:
            raise PayloadTooLarge(f"upload is over the limit of {self.max_upload_bytes} bytes")
        staged, size = await files.stage(upload_key(asset_id, part), chunks, limit=self.max_upload_bytes)
        try:
            await anyio.to_thread.run_sync(self._land, files, staged, asset_id, part)
        finally:
            files.discard(staged)
        return size

    def _land(self, files: ServedFiles, staged: Path, asset_id: str, part: PartName) -> None:
        with self._seal(asset_id):
            asset = self.store.get_asset(asset_id)
            if asset is None:
                raise NotFound("no such asset")
            if asset.part_state(part) is not PartState.AWAITING_UPLOAD:
                raise InvalidState(
                    f"the {part.value} part was completed while this upload was in flight; it was not kept"
                )
            files.promote(staged, upload_key(asset_id, part))

    def complete_part(self, account_id: str, asset_id: str, part: PartName) -> Asset:
        """The client finished uploading a part: its bytes are sealed, processing starts (and
        the credit is charged)."""
        with self._seal(asset_id):  # no upload lands between the checks and the state change
            return self._complete(account_id, asset_id, part)

    def _seal(self, asset_id: str) -> threading.Lock:
        return self._seals[hash(asset_id) % SEAL_STRIPES]

    def _complete(self, account_id: str, asset_id: str, part: PartName) -> Asset:
        asset = self.get(account_id, asset_id)
        current = asset.part_state(part)
        if current is None:
            raise NotFound(f"this asset has no {part.value} part", param="part")
        if current is not PartState.AWAITING_UPLOAD:
            return asset  # completing twice is harmless
        self._seal_part(asset.id, part)
        updated = self.store.modify_asset(asset.id, part_uploaded(part), asset_events)
        if updated is None:
            raise NotFound(f"no such asset: {asset_id}")
        self.wake()
        return updated

    def _seal_part(self, asset_id: str, part: PartName) -> None:
        """Check the upload, then move it where the part is read from: what is probed is what
        gets encoded, whatever lands at the upload's key afterwards (an S3 presigned PUT stays
        valid until it expires; now it can only write bytes nobody reads)."""
        uploaded, sealed = upload_key(asset_id, part), part_key(asset_id, part)
        if not self.storage.exists(uploaded):
            if self.storage.exists(sealed):
                return  # uploaded to the part's own key by a client of an earlier version
            raise InvalidState(f"nothing was uploaded for the {part.value} part; PUT it to its upload URL first")
        if self.storage.size(uploaded) > self.max_upload_bytes:
            self.storage.delete_prefix(uploaded)
            raise PayloadTooLarge(
                f"the {part.value} part is over the limit of {self.max_upload_bytes} bytes; it was deleted"
            )
        self.storage.move(uploaded, sealed)

    def delete(self, account_id: str, asset_id: str) -> None:
        """Removes the asset, its cuts, its renders (stopping running encodes) and all their media."""
        asset = self.get(account_id, asset_id)
        self.stop_renders(self.store.delete_asset(asset.id))
        self.storage.delete_prefix(asset_prefix(asset.id))
