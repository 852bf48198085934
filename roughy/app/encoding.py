"""The encoder's channel to the service on Kubernetes: URLs when it needs them, progress as it goes.

An encoder pod holds no credentials but its render's token (`roughy.core.tokens`, a file from a
Secret the operator made), and asks the API, over HTTP:

- `inputs`: GETs of its sources (and of a chunked render's chunks, for the join), signed now,
  when the pod starts: a Job that waited an hour for a GPU node does not start with URLs signed
  an hour ago (with pod-identity credentials a presigned URL lives about as long as the session
  that signed it, which may be 15 minutes);
- `output`: where to store the output (one PUT, or a multipart upload opened now) or one chunk
  of a chunked render, asked once the file is encoded, so that the upload never starts with a
  URL as old as the encode;
- `report`: progress (and, first, the video encoder it runs). Progress goes to the database
  (forward only), which the API reads; the Render's status is shown in steps of
  `STATUS_PROGRESS_STEP` through `show_progress` (the executor: a status patch), so that the
  Kubernetes API server is written about ten times per render for its progress, never polled.

A token opens one render's URLs until it finishes; a finished, failed or deleted render refuses it
(the encode is over, or cancelled). The operator never reads pod logs for progress.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roughy.app.renders import RenderService
from roughy.core.errors import InvalidState, NotFound, Unauthorized, ValidationFailed
from roughy.core.keys import chunk_keys
from roughy.core.models import Render, RenderState
from roughy.core.plan import max_output_bytes
from roughy.core.ports import EncodeJob, PresignedStorage
from roughy.core.tokens import token_matches

log = logging.getLogger(__name__)

#: The Render's status shows progress in steps of this much (about ten writes per render).
STATUS_PROGRESS_STEP = 0.1

#: Called with (render, progress shown, encoder) when the shown step changes or the encoder is
#: first known: the executor writes it where `kubectl get renders` shows it.
ShowProgress = Callable[[Render, float, str | None], None]


@dataclass(frozen=True)
class Report:
    progress: float
    encoder: str | None = None


def shown_step(progress: float) -> float:
    """`progress` rounded down to a STATUS_PROGRESS_STEP (1.0 only when done)."""
    if progress >= 1.0:
        return 1.0
    return round(math.floor(round(progress / STATUS_PROGRESS_STEP, 6)) * STATUS_PROGRESS_STEP, 6)


class EncoderGateway:
    def __init__(
        self,
        renders: RenderService,
        storage: PresignedStorage,
        *,
        url_ttl: int,
        show_progress: ShowProgress | None = None,
    ):
        self.renders = renders
        self.store = renders.store
        self.storage = storage
        self.url_ttl = url_ttl
        self.show_progress = show_progress

    def authorize(self, render_id: str, token: str | None) -> Render:
        """The unfinished render the token is for. A token that is not this render's (or no
        render of that id) is 401; a finished render is 409."""
        if not token_matches(token, self.store.encoder_token(render_id)):
            raise Unauthorized("not a valid encoder token for this render")
        render = self.store.get_render(render_id)
        if render is None:
            raise NotFound(f"no such render: {render_id}")
        if render.state in (RenderState.COMPLETED, RenderState.FAILED):
            # Not refused while pending: a hand-over whose answer was lost puts the row back in
            # the queue while its Render runs, and that encode's outcome is the truth.
            raise InvalidState(f"the render is {render.state.value}: its encode is over")
        return render

    def _job(self, render_id: str, token: str | None) -> EncodeJob:
        job = self.renders.job(self.authorize(render_id, token))
        if job is None:  # its asset or cut was deleted: the render row goes with them
            raise NotFound(f"no such render: {render_id}")
        return job

    def inputs(self, render_id: str, token: str | None) -> dict[str, Any]:
        """Fresh GETs of what the encode reads: `video`, `audio` (null when not read) and, for a
        chunked render, `chunks` in order (the join reads them)."""
        job = self._job(render_id, token)
        sign = self.storage.source_url
        answer: dict[str, Any] = {
            "video": sign(job.video_key, ttl=self.url_ttl) if job.video_key else None,
            "audio": sign(job.audio_key, ttl=self.url_ttl) if job.audio_key else None,
        }
        if job.plan.chunks:
            keys = chunk_keys(job.output_key, len(job.plan.chunks))
            answer["chunks"] = [sign(key, ttl=self.url_ttl) for key in keys]
        return answer

    def output(self, render_id: str, token: str | None, chunk: int | None = None) -> dict[str, Any]:
        """Where to store the output, opened now (`S3Storage.output_upload`'s form: one PUT, or a
        multipart upload sized from the plan), or, with `chunk`, a PUT for that chunk."""
        job = self._job(render_id, token)
        if chunk is not None:
            count = len(job.plan.chunks or ())
            if not 0 <= chunk < count:
                raise ValidationFailed(f"the render has {count} chunks; no chunk {chunk}", param="chunk")
            url = self.storage.output_target(chunk_keys(job.output_key, count)[chunk], ttl=self.url_ttl)
            return {"method": "PUT", "url": url, "headers": {}}
        return self.storage.output_upload(job.output_key, max_output_bytes(job.plan), ttl=self.url_ttl)

    def report(self, render_id: str, token: str | None, report: Report) -> None:
        """Progress forward into the database; the Render's status when its step changes."""
        render = self.authorize(render_id, token)
        progress = min(max(report.progress, 0.0), 1.0)
        self.renders.progress(render_id, progress)
        if self.show_progress is None:
            return
        # The status shows 100 % once the operator has recorded the render completed, not before.
        before, after = shown_step(render.progress), shown_step(min(max(progress, render.progress), 0.999))
        if after > before or report.encoder:
            self.show_progress(render, after, report.encoder)
