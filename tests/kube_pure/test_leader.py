"""The operator's leader election rules, pure (roughy/operator/leader.py): a Lease, an identity
and a clock in; what to write (or to wait) out. No server, no threads, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roughy.operator.leader import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    Lease,
    Move,
    Sighting,
    Timing,
    claim,
    decide,
    default_identity,
    lease_object,
    micro_time,
    must_step_down,
    released,
)
from roughy.settings import Settings

T0 = datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC)


def held_by(holder: str, version: str = "7", *, duration: float = 15, transitions: int = 3) -> Lease:
    return Lease(holder, duration, transitions, version, acquired="2026-12-01T11:00:00.000000Z")


def test_the_defaults_are_client_gos_and_the_documented_ones() -> None:
    timing = Timing()
    assert (timing.lease_duration, timing.renew_deadline, timing.retry_period) == (15, 10.0, 2.0)
    assert (LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD) == (15, 10.0, 2.0)
    assert timing.renew_interval == 5.0, "the leader renews twice within its renew deadline"
    settings = Settings()
    assert settings.leader_election is False, "off unless asked for (the chart asks)"
    assert (
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    ) == (15, 10.0, 2.0)


@pytest.mark.parametrize(("lease", "renew", "retry"), [(15, 15, 2), (15, 10, 10), (10, 12, 2), (15, 10, 0)])
def test_timings_must_leave_the_standby_a_margin(lease: int, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timing(lease, renew, retry)


# --- decide: whether to write the Lease ----------------------------------------------------------


def test_no_lease_is_created() -> None:
    assert decide(None, "a", 100.0, None).move is Move.CREATE


def test_a_lease_naming_me_is_renewed_even_after_a_restart_of_my_container() -> None:
    """The same pod name after a container restart: the process that held it is gone."""
    verdict = decide(held_by("a"), "a", 100.0, None)
    assert verdict.move is Move.RENEW


@pytest.mark.parametrize("holder", ["", None])
def test_a_released_lease_is_taken_at_once(holder: str | None) -> None:
    lease = Lease.parse({"metadata": {"resourceVersion": "9"}, "spec": {"holderIdentity": holder}})
    assert lease.holder == ""
    assert decide(lease, "b", 100.0, None).move is Move.TAKE


def test_another_holders_lease_is_waited_for_its_duration_from_when_i_first_saw_it() -> None:
    lease = held_by("a", "7")
    first = decide(lease, "b", 100.0, None)
    assert first.move is Move.WAIT and first.sighting == Sighting("7", 100.0) and first.expires_in == 15.0
    later = decide(lease, "b", 114.9, first.sighting)
    assert later.move is Move.WAIT and later.sighting == first.sighting and later.expires_in == pytest.approx(0.1)
    assert decide(lease, "b", 115.0, later.sighting).move is Move.TAKE


def test_a_renewal_starts_the_wait_again() -> None:
    seen = Sighting("7", 100.0)
    renewed = decide(held_by("a", "8"), "b", 114.0, seen)
    assert renewed.move is Move.WAIT and renewed.sighting == Sighting("8", 114.0)
    assert decide(held_by("a", "8"), "b", 128.9, renewed.sighting).move is Move.WAIT
    assert decide(held_by("a", "8"), "b", 129.0, renewed.sighting).move is Move.TAKE


def test_a_lease_that_looks_ancient_by_its_renew_time_is_still_waited_for() -> None:
    """Other nodes' clocks are not trusted: only this process's sighting counts."""
    stale = Lease("a", 15, 0, "7", renewed="2020-01-01T00:00:00.000000Z")
    assert decide(stale, "b", 5000.0, None).move is Move.WAIT


def test_the_holders_own_duration_counts_and_a_missing_one_is_ours() -> None:
    assert decide(held_by("a", duration=60), "b", 130.0, Sighting("7", 100.0)).move is Move.WAIT
    assert decide(held_by("a", duration=0), "b", 114.0, Sighting("7", 100.0)).move is Move.WAIT
    assert decide(held_by("a", duration=0), "b", 115.0, Sighting("7", 100.0)).move is Move.TAKE


@given(
    steps=st.lists(st.tuples(st.floats(min_value=0.0, max_value=20.0), st.booleans()), min_size=1, max_size=30),
)
def test_a_standby_never_takes_over_within_a_lease_duration_of_the_last_change_it_saw(
    steps: list[tuple[float, bool]],
) -> None:
    """Whatever the timing of the holder's renewals and of the standby's reads, a TAKE comes
    only after the version last seen has been unchanged for the whole duration."""
    now, version, seen = 0.0, 1, None
    changed_at = 0.0
    for pause, renewed in steps:
        now += pause
        if renewed:
            version += 1
            changed_at = now  # the standby reads right after the renewal, at the earliest
        verdict = decide(held_by("a", str(version)), "b", now, seen)
        if verdict.move is Move.TAKE:
            assert now - changed_at >= 15
            return
        assert verdict.move is Move.WAIT
        seen = verdict.sighting


# --- the leader's deadline ------------------------------------------------------------------------


def test_the_leader_steps_down_once_no_renewal_was_sent_within_the_deadline() -> None:
    assert not must_step_down(100.0, 109.99)
    assert must_step_down(100.0, 110.0)
    assert must_step_down(100.0, 103.0, Timing(3, 2.0, 0.5))


def test_the_leader_stops_before_any_standby_may_take_over() -> None:
    """The margin the whole scheme rests on: renew deadline < lease duration, both measured
    from the same renewal (the leader from sending it, the standby from seeing it, later)."""
    timing = Timing()
    sent = 100.0
    seen_by_standby = sent + 0.01
    first_takeover = seen_by_standby + timing.lease_duration
    assert must_step_down(sent, sent + timing.renew_deadline, timing)
    assert sent + timing.renew_deadline < first_takeover - 4.9


# --- what is written --------------------------------------------------------------------------------


def test_a_new_lease_names_me_with_no_transition() -> None:
    spec = claim(None, "a", T0)
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-01T12:00:00.250000Z",
        "renewTime": "2026-12-01T12:00:00.250000Z",
        "leaseTransitions": 0,
    }


def test_a_renewal_keeps_acquire_time_and_transitions() -> None:
    spec = claim(held_by("a", transitions=3), "a", T0 + timedelta(seconds=5))
    assert spec["acquireTime"] == "2026-12-01T11:00:00.000000Z" and spec["renewTime"] == "2026-12-01T12:00:05.250000Z"
    assert spec["leaseTransitions"] == 3


@pytest.mark.parametrize("previous", ["a", ""])
def test_a_takeover_is_a_transition_with_a_new_acquire_time(previous: str) -> None:
    spec = claim(held_by(previous, transitions=3), "b", T0, Timing(20, 10.0, 2.0))
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == spec["renewTime"] == "2026-12-01T12:00:00.250000Z"
    assert spec["leaseDurationSeconds"] == 20


def test_a_released_lease_has_no_holder_and_is_already_expired_by_its_own_times() -> None:
    spec = released(held_by("a", transitions=3), T0)
    assert "holderIdentity" not in spec and spec["leaseTransitions"] == 3
    assert spec["leaseDurationSeconds"] == 1 and spec["renewTime"] == "2026-12-01T12:00:00.250000Z"


def test_writes_are_conditional_on_the_version_read_and_creates_are_not() -> None:
    spec = claim(None, "a", T0)
    created = lease_object("roughy-operator", "ns", spec)
    assert created["apiVersion"] == "coordination.k8s.io/v1" and created["kind"] == "Lease"
    assert created["metadata"] == {"name": "roughy-operator", "namespace": "ns"}
    assert lease_object("roughy-operator", "ns", spec, "42")["metadata"]["resourceVersion"] == "42"


def test_times_read_back_through_the_client_are_written_as_micro_times_again() -> None:
    """The client turns a MicroTime into a datetime and back into ISO 8601 with an offset, and
    without fractions when they are 0; the API server parses only six fractional digits."""
    obj = {
        "metadata": {"resourceVersion": "5"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "leaseTransitions": 2,
            "acquireTime": "2026-12-01T11:00:00+00:00",
            "renewTime": "2026-12-01T13:00:00.5+01:00",
        },
    }
    lease = Lease.parse(obj)
    assert lease == Lease("a", 15.0, 2, "5", "2026-12-01T11:00:00.000000Z", "2026-12-01T12:00:00.500000Z")
    assert Lease.parse({"spec": {"acquireTime": "yesterday"}}).acquired is None
    one_hour_east = timezone(timedelta(hours=1))
    assert micro_time(datetime(2026, 12, 1, 13, 0, tzinfo=one_hour_east)) == "2026-12-01T12:00:00.000000Z"
    assert micro_time(datetime(2026, 12, 1, 12, 0)) == "2026-12-01T12:00:00.000000Z", "naive is UTC"


def test_the_identity_is_the_pod_name_else_host_and_pid() -> None:
    assert default_identity({"POD_NAME": "roughy-operator-7d9f-x2"}, "host", 12) == "roughy-operator-7d9f-x2"
    assert default_identity({}, "laptop", 4242) == "laptop-4242"
    assert default_identity({"POD_NAME": ""}, "laptop", 4242) == "laptop-4242"
