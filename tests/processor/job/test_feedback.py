"""Ratings and clicks as records, and the metrics they add up to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from processor.job.feedback import (
    Rating,
    RunSettings,
    aggregate,
    click_key,
    parse_feedback_key,
    rating_key,
    render_metrics,
)

LORA = RunSettings(model="sdxl", method="lora", train_steps=800, steps=25, acceptance_rate=0.9)
FULL = RunSettings(model="sdxl", method="full", train_steps=None, steps=25, acceptance_rate=0.5)


def rating(job: str, stars: int, favourites: list[str] | None = None, run: RunSettings | None = None) -> Rating:
    return Rating(job_id=job, stars=stars, favourites=favourites or [], rated_at=1.0, run=run or RunSettings())


def test_keys_round_trip_and_nothing_else_parses() -> None:
    assert parse_feedback_key(rating_key("job-1")) == ("job-1", "rating")
    assert parse_feedback_key(click_key("job-1", "headshot-001.jpg", 7300.5)) == ("job-1", "click")
    assert click_key("job-1", "headshot-001.jpg", 7300.5) == "clicks/job-1/headshot-001.jpg/7200.json"
    assert click_key("job-1", "headshot-001.jpg", 10799) == click_key("job-1", "headshot-001.jpg", 7200)  # one an hour
    assert parse_feedback_key("feedback/job-1/clicks/0000000012500-ab12.json") == ("job-1", "click")  # the old layout
    for key in ("feedback/job-1/other.json", "results/job-1/rating.json", "feedback/job-1/clicks/x/y.json",
                "clicks/job-1/x.json", "clicks/job-1/a/b/c.json"):
        assert parse_feedback_key(key) is None
    with pytest.raises(ValueError):
        click_key("job-1", "../rating.json", 1.0)


def test_run_settings_come_from_results_json_summary() -> None:
    doc = {"summary": {"model": "m", "train_method": "lora", "train_steps": 10, "steps": 25,
                       "acceptance_rate": 0.75, "mode": "enforce", "other": 1}}
    run = RunSettings.from_results(doc)
    assert (run.model, run.method, run.train_steps, run.steps, run.acceptance_rate) == ("m", "lora", 10, 25, 0.75)
    assert RunSettings.from_results(None) == RunSettings()


@pytest.mark.parametrize("bad", [{"stars": 0}, {"stars": 6}, {"favourites": ["../x"]}, {"job_id": "a/b"}])
def test_a_rating_outside_the_rules_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Rating.model_validate({"job_id": "job-1", "stars": 3, "rated_at": 1.0, **bad})


def test_aggregate_gives_distribution_mean_clicks_per_delivered_job_and_breakdown() -> None:
    delivered = {"a": LORA, "b": LORA, "c": FULL, "d": RunSettings()}
    ratings = [rating("a", 5, ["headshot-001.jpg", "headshot-002.jpg"]), rating("b", 4), rating("c", 2),
               rating("d", 3, run=FULL), rating("gone", 1)]  # "gone": status.json no longer there
    m = aggregate(delivered, ratings, {"a": 3, "c": 1, "gone": 7})
    assert m.distribution == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1} and m.ratings == 5 and m.mean_stars == 3.0
    assert m.delivered_jobs == 4 and m.clicks == 4 and m.clicks_per_job == 1.0 and m.jobs_with_a_click == 2
    assert m.median_clicks == 0.5 and m.favourites == 2
    rows = {(r.method, r.train_steps): r for r in m.groups}
    assert rows[("lora", "800")].jobs == 2 and rows[("lora", "800")].mean_stars == 4.5
    assert rows[("lora", "800")].clicks_per_job == 1.5 and rows[("lora", "800")].mean_acceptance == 0.9
    # "d" had no results.json left: its rating's snapshot of the settings puts it with "c"
    assert rows[("full", "auto")].jobs == 2 and rows[("full", "auto")].mean_stars == 2.5
    text = render_metrics(m)
    assert "mean 3.00 stars" in text and "1.00 per delivered job" in text and "lora" in text


def test_aggregate_of_nothing_is_zeroes_not_an_error() -> None:
    m = aggregate({}, [], {})
    assert m.ratings == 0 and m.mean_stars is None and m.clicks_per_job == 0.0 and m.groups == []
    assert "delivered jobs: 0" in render_metrics(m)
