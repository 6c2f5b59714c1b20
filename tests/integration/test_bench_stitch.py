"""The stitch figures do not rot: bench.stitch's quick run (tiny films, no timed assertion)."""

from __future__ import annotations

import math

import pytest

from bench import stitch
from bench.run import table


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_quick_stitch_run_yields_every_figure_and_checks_that_memory_is_bounded(tmp_path):
    # When the quick run is measured, the way bench.run calls a figure module (its clips kept in tmp_path)
    figures = stitch.run_plan(stitch.QUICK, cache=tmp_path)

    # Then every figure is there, for each of the plan's resolutions, with a finite positive value
    first, other = stitch.QUICK.resolutions
    keys = {f.key for f in figures}
    assert keys == {
        *(
            f"stitch.{name}.{res}"
            for res in (first, other)
            for name in ("cpu_per_film_s", "verify_cpu_per_film_s")
        ),
        f"stitch.lambda_time.{first}",
        f"stitch.lambda_time.{other}",
        "stitch.peak_rss.stitch",
        "stitch.peak_rss.verify",
        "stitch.bounded.stitch",
        "stitch.bounded.verify",
        "stitch.verified",
        "stitch.media_layer_size",
        "stitch.function_size",
    }, [f.note for f in figures if f.note]
    for f in figures:
        assert f.value is not None and math.isfinite(f.value) and f.value > 0, (f.key, f.value, f.note)
        assert "(quick)" in f.name or "quick:" in f.name, f.name

    # And the memory-bounded invariant is checked: a goal and a verdict, here a pass
    by_key = {f.key: f for f in figures}
    for step in ("stitch", "verify"):
        bounded = by_key[f"stitch.bounded.{step}"]
        assert bounded.goal.startswith(f"<= {stitch.BOUNDED_GOAL}")
        assert bounded.passed is True, bounded.baseline
    assert by_key["stitch.verified"].passed is True, by_key["stitch.verified"].note
    assert by_key["stitch.verified"].value == len(stitch.QUICK.films())

    # And the full run's time goal is not applied to a quick run; each projection is for the 14 x 5 s film,
    # scaled from the film measured at that resolution (the other resolution's: the short one), and says so
    for res, shots in ((first, stitch.QUICK.shots), (other, stitch.QUICK.short_shots)):
        projected = by_key[f"stitch.lambda_time.{res}"]
        assert projected.passed is None
        assert projected.detail["cpu_s"] < projected.value
        assert f"(scaled from {shots} x {stitch.QUICK.seconds:g} s)" in projected.name
    assert "| Projected Lambda time" in table(figures)

    # And the clips were kept: a second run would make none
    paths, making = stitch.clips(stitch.QUICK, cache=tmp_path)
    assert all(m["made"] == 0 and m["cached"] == stitch.QUICK.distinct for m in making.values()), making
    assert all(path.parent == tmp_path and path.stat().st_size > 0 for ps in paths.values() for path in ps)
    assert not list(tmp_path.glob(".*")), "no partial clip left behind"


def test_the_clip_cache_is_keyed_by_the_clip_spec_and_the_version(monkeypatch, tmp_path):
    # Given a clip's place in the cache
    plan = stitch.QUICK
    path = stitch.clip_path(plan, "240p", 0, tmp_path)

    # Then another clip, another length or another CLIP_VERSION has another place; the same one the same
    assert stitch.clip_path(plan, "240p", 0, tmp_path) == path
    assert stitch.clip_path(plan, "240p", 1, tmp_path) != path
    longer = stitch.Plan(plan.resolutions, plan.shots, 3.0, plan.short_shots, plan.distinct, True, False)
    assert stitch.clip_path(longer, "240p", 0, tmp_path) != path
    monkeypatch.setattr(stitch.media_measure(), "CLIP_VERSION", "another")
    assert stitch.clip_path(plan, "240p", 0, tmp_path) != path
