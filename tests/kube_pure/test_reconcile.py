"""The operator's decisions, as a pure function: Render status + Job observation -> next status, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from roughy.kube.reconcile import CHUNK_SHARE, JobObservation, decide

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RESULT = {"format": "mp4", "width": 1280, "height": 720, "duration": 3.0, "sizeBytes": 1000}


def test_a_new_render_gets_its_job_created():
    d = decide(None, 1, JobObservation(exists=False), T0)
    assert d.actions == ("create_job",)
    assert d.status["state"] == "pending" and d.status["observedGeneration"] == 1
    assert d.status["conditions"][0]["type"] == "Running" and d.status["conditions"][0]["status"] == "False"


def test_a_running_job_makes_the_render_running_with_its_encoder_and_progress():
    d = decide({"state": "pending"}, 1, JobObservation(exists=True, active=1, progress=0.3, encoder="libx264"), T0)
    assert d.actions == ()
    assert d.status["state"] == "running" and d.status["progress"] == 0.3
    assert d.status["encoder"] == "libx264" and d.status["startedAt"] == "2026-11-28T12:00:00Z"


def test_a_job_whose_pod_has_not_started_leaves_the_render_pending():
    waiting = JobObservation(exists=True, active=1, started=False)
    d = decide({"state": "pending"}, 1, waiting, T0)
    assert d.status["state"] == "pending" and d.actions == () and "startedAt" not in d.status
    [running] = [c for c in d.status["conditions"] if c["type"] == "Running"]
    assert running["status"] == "False" and running["reason"] == "PodPending"
    # a retry's pod waiting to start does not take a running render back to pending
    d = decide({"state": "running", "progress": 0.4}, 1, waiting, T0)
    assert d.status["state"] == "running" and d.status["progress"] == 0.4


def test_a_completed_job_completes_the_render_once():
    running = decide({"state": "pending"}, 1, JobObservation(exists=True, active=1, progress=0.5), T0).status
    done = decide(running, 1, JobObservation(exists=True, succeeded=1, complete=True, result=RESULT), T0)
    assert done.actions == ("record",)
    assert done.status["state"] == "completed" and done.status["progress"] == 1.0
    assert done.status["result"] == RESULT and done.status["startedAt"] == running["startedAt"]
    again = decide(done.status, 1, JobObservation(exists=True, succeeded=1, complete=True, result=RESULT), T0)
    assert again.actions == () and again.status == done.status


def test_a_completed_job_without_a_result_is_a_failure():
    d = decide({"state": "running"}, 1, JobObservation(exists=True, succeeded=1, complete=True), T0)
    assert d.status["state"] == "failed" and d.status["error"]["code"] == "encode_failed"


def test_failures_carry_the_encoders_words_or_a_code_from_the_exit_status():
    said = JobObservation(exists=True, failed=1, failed_reason="PodFailurePolicy", exit_code=3,
                          error={"code": "invalid_media", "message": "moov atom not found"})
    d = decide({"state": "running"}, 1, said, T0)
    assert d.actions == ("record",)
    assert d.status["error"] == {"code": "invalid_media", "message": "moov atom not found"}
    silent = JobObservation(exists=True, failed=1, failed_reason="PodFailurePolicy", exit_code=3)
    assert decide({"state": "running"}, 1, silent, T0).status["error"]["code"] == "invalid_media"
    deadline = JobObservation(exists=True, failed=1, failed_reason="DeadlineExceeded")
    assert decide({"state": "running"}, 1, deadline, T0).status["error"]["code"] == "encode_timeout"
    backoff = JobObservation(exists=True, failed=3, failed_reason="BackoffLimitExceeded", exit_code=1)
    err = decide({"state": "running"}, 1, backoff, T0).status["error"]
    assert err["code"] == "encode_failed" and "BackoffLimitExceeded" in err["message"]


def test_a_terminal_render_never_changes_again():
    failed = {"state": "failed", "error": {"code": "invalid_media", "message": "x"}, "progress": 0.2}
    late = JobObservation(exists=True, succeeded=1, complete=True, result=RESULT, progress=0.9)
    d = decide(failed, 2, late, T0)
    assert d.status == failed and d.actions == ()


def test_condition_transition_time_moves_only_when_its_status_changes():
    s1 = decide({"state": "pending"}, 1, JobObservation(exists=True, active=1, progress=0.1), T0).status
    later = T0 + timedelta(seconds=30)
    s2 = decide(s1, 1, JobObservation(exists=True, active=1, progress=0.2), later).status
    assert s2["conditions"][0]["lastTransitionTime"] == s1["conditions"][0]["lastTransitionTime"]
    s3 = decide(s2, 1, JobObservation(exists=True, complete=True, succeeded=1, result=RESULT), later).status
    running = next(c for c in s3["conditions"] if c["type"] == "Running")
    assert running["status"] == "False" and running["lastTransitionTime"] == "2026-11-28T12:00:30Z"


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1.5)), min_size=1, max_size=30))
def test_progress_never_goes_backwards_and_is_below_one_until_completed(reports):
    status: dict = {"state": "pending"}
    seen = []
    for p in reports:
        status = decide(status, 1, JobObservation(exists=True, active=1, progress=p), T0).status
        seen.append(status["progress"])
    assert seen == sorted(seen) and all(x < 1.0 for x in seen)
    final = decide(status, 1, JobObservation(exists=True, complete=True, succeeded=1, result=RESULT), T0)
    assert final.status["progress"] == 1.0


# --- a chunked render: the chunks' Indexed Job, then the join ----------------------------------

NO_JOB = JobObservation(exists=False)


def test_a_chunked_render_runs_its_chunks_then_its_join_then_completes():
    d = decide(None, 1, NO_JOB, T0, chunks=NO_JOB)
    assert d.actions == ("create_chunk_job",) and d.status["state"] == "pending"

    waiting = JobObservation(exists=True, active=4, started=False, completions=8)
    d = decide(d.status, 1, NO_JOB, T0, chunks=waiting)
    assert d.actions == () and d.status["state"] == "pending"

    half = JobObservation(exists=True, active=4, succeeded=4, completions=8, encoder="libx264")
    d = decide(d.status, 1, NO_JOB, T0, chunks=half)
    assert d.actions == () and d.status["state"] == "running" and d.status["encoder"] == "libx264"
    assert d.progress == CHUNK_SHARE / 2  # from the Job's counts: no pod log is read
    assert d.status["progress"] == 0.4  # the status moves in tenths

    done = JobObservation(exists=True, succeeded=8, completions=8, complete=True)
    d = decide(d.status, 1, NO_JOB, T0, chunks=done)
    assert d.actions == ("create_job",) and d.progress == CHUNK_SHARE
    [running] = [c for c in d.status["conditions"] if c["type"] == "Running"]
    assert running["reason"] == "Joining"

    join = JobObservation(exists=True, active=1, progress=0.5)
    d = decide(d.status, 1, join, T0, chunks=done)
    assert d.actions == () and d.progress == CHUNK_SHARE + (1 - CHUNK_SHARE) * 0.5

    finished = JobObservation(exists=True, succeeded=1, complete=True, result=RESULT)
    d = decide(d.status, 1, finished, T0, chunks=done)
    assert d.actions == ("record",) and d.status["state"] == "completed" and d.status["progress"] == 1.0
    assert d.status["encoder"] == "libx264"  # what the chunks ran, kept through the join


def test_a_chunk_that_fails_for_good_fails_the_render_with_the_encoders_error():
    running = decide({"state": "pending"}, 1, NO_JOB, T0,
                     chunks=JobObservation(exists=True, active=2, succeeded=1, completions=3)).status  # fmt: skip
    error = {"code": "invalid_media", "message": "the video stream cannot be decoded"}
    failed = JobObservation(exists=True, failed=2, completions=3, failed_reason="MaxFailedIndexesExceeded", error=error)
    d = decide(running, 1, NO_JOB, T0, chunks=failed)
    assert d.actions == ("record",) and d.status["state"] == "failed" and d.status["error"] == error
    deadline = JobObservation(exists=True, completions=3, failed_reason="DeadlineExceeded")
    assert decide(running, 1, NO_JOB, T0, chunks=deadline).status["error"]["code"] == "encode_timeout"


def test_a_chunked_renders_progress_only_moves_forward():
    status = {"state": "running", "progress": 0.5}
    fewer = JobObservation(exists=True, active=2, succeeded=1, completions=4)  # a view older than the status
    assert decide(status, 1, NO_JOB, T0, chunks=fewer).status["progress"] == 0.5


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_conditions_follow_the_api_conventions_so_kubectl_wait_returns():
    running = decide({"state": "pending"}, 1, JobObservation(exists=True, active=1, progress=0.424), T0).status
    assert running["progressPercent"] == 40  # what `kubectl get renders` shows: tenths
    assert conditions(running) == {"Running": ("True", "Encoding")}
    done = decide(running, 1, JobObservation(exists=True, succeeded=1, complete=True, result=RESULT), T0).status
    assert conditions(done) == {"Running": ("False", "Completed"), "Complete": ("True", "Completed"),
                                "Ready": ("True", "Completed")}  # fmt: skip
    assert done["progressPercent"] == 100
    error = {"code": "encode_timeout", "message": "the render did not finish within its time limit"}
    gone = decide(running, 1, JobObservation(exists=True, failed=1, failed_reason="BackoffLimitExceeded",
                                             error=error), T0).status  # fmt: skip
    assert conditions(gone) == {"Running": ("False", "Failed"), "Failed": ("True", "EncodeTimeout"),
                                "Ready": ("False", "Failed")}  # fmt: skip
    assert gone["progressPercent"] == 40  # where it stopped


# --- waiting for capacity ---------------------------------------------------------------------


def test_a_render_that_waits_for_capacity_past_its_budget_fails_with_no_capacity_and_its_jobs_go():
    waiting = JobObservation(exists=True, active=1, started=False, created_at=T0)
    early = decide({"state": "pending"}, 1, waiting, T0 + timedelta(seconds=3599), queue_seconds=3600)
    assert early.status["state"] == "pending" and early.actions == ()
    late = decide({"state": "pending"}, 1, waiting, T0 + timedelta(seconds=3601), queue_seconds=3600)
    assert late.actions == ("record", "delete_jobs")
    assert late.status["state"] == "failed" and late.status["error"]["code"] == "no_capacity"
    assert "3600 s" in late.status["error"]["message"]
    # No budget: it waits; a render that already ran waits for a retry's pod without a budget.
    assert decide({"state": "pending"}, 1, waiting, T0 + timedelta(days=1), queue_seconds=0).actions == ()
    assert decide({"state": "running"}, 1, waiting, T0 + timedelta(days=1), queue_seconds=60).actions == ()
    # The chunks of a chunked render wait under the same budget.
    chunks = JobObservation(exists=True, active=8, started=False, completions=8, created_at=T0)
    late = decide({"state": "pending"}, 1, NO_JOB, T0 + timedelta(seconds=61), chunks=chunks, queue_seconds=60)
    assert late.actions == ("record", "delete_jobs") and late.status["error"]["code"] == "no_capacity"


def test_a_job_past_its_deadline_that_never_started_a_pod_is_no_capacity_not_a_timeout():
    never = JobObservation(exists=True, failed_reason="DeadlineExceeded", started=False)
    assert decide({"state": "pending"}, 1, never, T0).status["error"]["code"] == "no_capacity"
    ran = JobObservation(exists=True, failed_reason="DeadlineExceeded", started=True)
    assert decide({"state": "running"}, 1, ran, T0).status["error"]["code"] == "encode_timeout"
    # The Job controller deletes a timed-out Job's pods: none left to show it ran, but the render did.
    gone = JobObservation(exists=True, failed_reason="DeadlineExceeded", started=False)
    assert decide({"state": "running", "startedAt": "x"}, 1, gone, T0).status["error"]["code"] == "encode_timeout"


def test_the_join_waits_under_the_queue_budget_too_and_the_chunks_are_remembered_done():
    done = JobObservation(exists=True, succeeded=4, completions=4, complete=True)
    joining = decide({"state": "running", "progress": 0.5}, 1, NO_JOB, T0, chunks=done)
    assert joining.actions == ("create_job",) and joining.status["chunksDone"] is True  # its Job may go (TTL)
    waiting = JobObservation(exists=True, active=1, started=False, created_at=T0)  # a join never admitted
    assert decide(joining.status, 1, waiting, T0 + timedelta(seconds=30), chunks=done, queue_seconds=60).actions == ()
    late = decide(joining.status, 1, waiting, T0 + timedelta(seconds=61), chunks=done, queue_seconds=60)
    assert late.actions == ("record", "delete_jobs") and late.status["error"]["code"] == "no_capacity"


def test_the_render_status_moves_in_tenths_while_the_database_gets_every_value():
    """A 2 s poll of a long encode: the Render is written ~10 times for its progress, not on
    every tick; the API (which reads the database) still sees every value."""
    status: dict = {"state": "pending"}
    written, recorded = [], []
    for tick in range(1, 200):
        d = decide(status, 1, JobObservation(exists=True, active=1, progress=tick / 200), T0)
        if d.status != status:
            written.append(d.status["progress"])
        recorded.append(d.progress)
        status = d.status
    assert len(written) <= 11 and written == sorted(written) and written[-1] == 0.9
    assert recorded == [tick / 200 for tick in range(1, 200)]
