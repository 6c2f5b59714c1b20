"""When a provider task is checked, with push on or off: pure arithmetic over the settings."""

from __future__ import annotations

from inbetween.config import Settings, Timing
from inbetween.usecases.check_schedule import (
    FALLBACK_MIN_GENERATION_S,
    first_check_at,
    next_check_at,
    on_poll_grid,
)


def _settings(push_enabled: bool) -> Settings:
    return Settings(
        jobs_table="t",
        inbox_bucket="i",
        output_bucket="o",
        topic_arn="a",
        intake_queue_url="q",
        completion_queue_url="c",
        api_key_secret="k",
        webhook_secret_name="w",
        provider_base_url="http://127.0.0.1/api/v1",
        poll_interval_s=5.0,
        push_enabled=push_enabled,
    )


def test_push_off_checks_early_and_often():
    settings, timing = _settings(False), Timing()
    # the model's shortest usual generation time (the reference's "usually 1-5 minutes")
    assert first_check_at(settings, timing, "wan2.2-kf2v-flash", 0.0) == 60.0
    assert first_check_at(settings, timing, "wanx2.1-kf2v-plus", 0.0) == 90.0
    assert next_check_at(settings, timing, 100.0) == 105.0


def test_push_on_checks_only_once_the_event_is_overdue():
    settings, timing = _settings(True), Timing()
    # the model's longest usual generation time (300 s) plus the grace (60 s), then every minute, on a
    # one-minute grid so that overdue tasks come due together (one list call for all of them)
    assert first_check_at(settings, timing, "wan2.2-kf2v-flash", 0.0) == 360.0
    assert next_check_at(settings, timing, 100.0) == 120.0
    assert first_check_at(settings, timing, "wan2.2-kf2v-flash", 10.0) == 420.0
    overdue_soon = Timing(expected_generation_s=10, push_grace_s=5, push_recheck_s=5)
    assert first_check_at(settings, overdue_soon, "x", 0.0) == 15.0


def test_an_unknown_model_is_first_checked_after_the_usual_minute_on_the_grid():
    # Given push off, a 5 s grid and a model the catalog does not know
    settings = _settings(False)
    # When / Then: the reference's "usually 1-5 minutes" lower bound, rounded up to the grid
    assert FALLBACK_MIN_GENERATION_S == 60.0
    assert first_check_at(settings, Timing(), "wan9", 1.0) == 65.0
    assert first_check_at(settings, Timing(), None, 0.0) == 60.0


def test_a_configured_first_delay_wins_over_the_catalog():
    assert first_check_at(_settings(False), Timing(first_poll_delay_s=2.0), "wan2.2-kf2v-flash", 0.0) == 5.0


def test_a_check_that_ran_a_little_late_keeps_to_the_next_grid_instant():
    settings, timing = _settings(False), Timing()
    # Given checks due at 100 on a 5 s grid that ran up to a quarter interval late
    # Then the next one is still at 105, not pushed to 110
    assert next_check_at(settings, timing, 100.9) == 105.0
    assert next_check_at(settings, timing, 103.0) == 105.0
    # and one that ran very late moves to the grid instant after
    assert next_check_at(settings, timing, 104.0) == 110.0


def test_the_grid_rounds_up_and_a_zero_interval_is_no_grid():
    assert on_poll_grid(12.0, 12.0) == 12.0
    assert on_poll_grid(12.01, 12.0) == 24.0
    assert on_poll_grid(7.3, 0) == 7.3


def test_a_straggler_is_checked_less_and_less_often_up_to_every_five_minutes():
    # Given push off, a 5 s grid, and a flash task (longest usual generation 300 s) first seen RUNNING at 0
    settings, timing = _settings(False), Timing()
    flash = "wan2.2-kf2v-flash"

    def gap(now: float) -> float:
        return next_check_at(settings, timing, now, model=flash, running_since=0.0) - now

    # Then: every 5 s until it has run twice its longest usual time ...
    assert gap(100.0) == 5.0 and gap(595.0) == 5.0
    # ... then a quarter of how far past that it is (on the grid) ...
    assert gap(800.0) == 50.0
    # ... at most every 5 minutes, however long it is stuck
    assert gap(3 * 3600.0) == 300.0
    # and a task still PENDING in the provider's queue (never seen RUNNING) keeps the grid
    assert next_check_at(settings, timing, 3 * 3600.0, model=flash, running_since=None) == 3 * 3600.0 + 5.0


def test_a_task_stuck_for_three_hours_costs_tens_of_queries_not_thousands():
    settings, timing = _settings(False), Timing()
    now, checks = 0.0, 0
    while now < 3 * 3600.0:
        now = next_check_at(settings, timing, now, model="wan2.2-kf2v-flash", running_since=0.0)
        checks += 1
    # every 5 s for 600 s (120 checks), then backing off to every 5 minutes: 3 h at 5 s would be 2,160
    assert checks < 200


def test_push_on_keeps_its_recheck_for_stragglers():
    settings, timing = _settings(True), Timing()
    assert next_check_at(settings, timing, 3 * 3600.0 + 1, model="wan2.2-kf2v-flash", running_since=0.0) == (
        3 * 3600.0 + 60.0
    )
