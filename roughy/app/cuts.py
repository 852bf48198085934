"""Cuts (SPEC 4): explicit segments or silence removal, checked against the source once the
asset is cuttable. Completing or failing a cut is `roughy.app.processing`."""

from __future__ import annotations

from collections.abc import Callable

from roughy.app.idempotency import Idempotency, fingerprint
from roughy.core.errors import NotFound, ValidationFailed
from roughy.core.gates import require_cuttable
from roughy.core.ids import new_id, now
from roughy.core.models import Cut, CutMethod, CutState, Segment
from roughy.core.ports import Store
from roughy.core.segments import check_structure


class CutService:
    def __init__(
        self, store: Store, *, stop_renders: Callable[[list[str]], None], wake: Callable[[], None] = lambda: None
    ):
        self.store = store
        self.stop_renders = stop_renders
        self.wake = wake

    def create(
        self,
        account_id: str,
        asset_id: str,
        segments: list[Segment] | None,
        silence: dict[str, float] | None,
        *,
        idempotency_key: str | None = None,
    ) -> Cut:
        """Exactly one of `segments` (explicit) and `silence` (its parameters) is given. With
        `idempotency_key`, a retry answers the first try's cut (`roughy.app.idempotency`)."""
        plan = {"segments": [(s.start, s.end) for s in segments] if segments is not None else None, "silence": silence}
        return Idempotency(self.store).once(
            account_id,
            idempotency_key,
            fingerprint(f"create_cut {asset_id}", plan),
            new_id("cut"),
            lambda cut_id: self._create(cut_id, account_id, asset_id, segments, silence),
            lambda cut_id: self.store.get_cut(cut_id, account_id),
        )

    def _create(
        self,
        cut_id: str,
        account_id: str,
        asset_id: str,
        segments: list[Segment] | None,
        silence: dict[str, float] | None,
    ) -> Cut:
        if (segments is None) == (silence is None):
            raise ValidationFailed('give either "segments" or "method": "silence"', param="segments")
        checked = check_structure(segments) if segments is not None else []
        asset = self.store.get_asset(asset_id, account_id)
        if asset is None:
            raise NotFound(f"no such asset: {asset_id}")
        require_cuttable(asset)  # 409 asset_processing / asset_payment_required / asset_failed (SPEC 2)
        cut = Cut(
            id=cut_id,
            account_id=account_id,
            asset_id=asset.id,
            state=CutState.PENDING,
            method=CutMethod.SILENCE if silence is not None else CutMethod.SEGMENTS,
            created_at=now(),
            segments=checked,
            silence=silence,
        )
        self.store.insert_cut(cut)
        self.wake()
        return cut

    def get(self, account_id: str, cut_id: str) -> Cut:
        cut = self.store.get_cut(cut_id, account_id)
        if cut is None:
            raise NotFound(f"no such cut: {cut_id}")
        return cut

    def page(self, account_id: str, asset_id: str, limit: int, starting_after: str | None) -> tuple[list[Cut], bool]:
        if self.store.get_asset(asset_id, account_id) is None:
            raise NotFound(f"no such asset: {asset_id}")
        return self.store.list_cuts(asset_id, limit, starting_after)

    def delete(self, account_id: str, cut_id: str) -> None:
        """Deletes the cut and the renders made from it (running ones are stopped)."""
        cut = self.get(account_id, cut_id)
        self.stop_renders(self.store.delete_cut(cut.id))
