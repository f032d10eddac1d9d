"""The seed's online metrics: ratings and download clicks, as records and their aggregation.

Storage (the front door writes, ``headshots metrics`` reads) is S3 JSON in the output bucket,
one object per fact: ``feedback/<job>/rating.json`` (the person's latest rating: 1-5 stars
and favourite headshots; kept for the ratings' retention, two years by default) and
``clicks/<job>/<file>/<hour>.json`` (download clicks: at most one object per job, file and
hour, written with If-None-Match, so a link fetched in a loop costs one object an hour; they
expire with the results, by the ``clicks/`` lifecycle rule). Why S3 and not DynamoDB: a few
writes per job, never a read on the request path, no contention, and the records sit beside
the results they describe, readable by the same tools; the only reader is an offline report.
Clicks written before this layout (``feedback/<job>/clicks/<ms>-<nonce>.json``) still count.

A rating carries the run's settings from results.json, so the breakdown survives the
results/ lifecycle that deletes results.json when the links expire. Nothing here is personal:
job ids, stars, file names, times.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from processor.links import FILE_NAME
from processor.manifest import validate_job_id

FEEDBACK_PREFIX = "feedback/"
RATING_NAME = "rating.json"
CLICKS_DIR = "clicks/"
#: Clicks of one file of one job within one such window are one click.
CLICK_WINDOW_S = 3600


def feedback_prefix(job_id: str) -> str:
    return f"{FEEDBACK_PREFIX}{validate_job_id(job_id)}/"


def rating_key(job_id: str) -> str:
    return feedback_prefix(job_id) + RATING_NAME


def click_key(job_id: str, file: str, at: float) -> str:
    """The one object of a job's file's clicks within an hour (``CLICK_WINDOW_S``)."""
    if not FILE_NAME.fullmatch(file):
        raise ValueError(f"not a result file name: {file!r}")
    hour = int(at // CLICK_WINDOW_S) * CLICK_WINDOW_S
    return f"{CLICKS_DIR}{validate_job_id(job_id)}/{file}/{hour}.json"


def parse_feedback_key(key: str) -> tuple[str, str] | None:
    """``(job_id, "rating" | "click")`` for a feedback or click key, None for anything else."""
    if key.startswith(CLICKS_DIR):
        parts = key[len(CLICKS_DIR):].split("/")
        return (parts[0], "click") if len(parts) == 3 and parts[2].endswith(".json") else None
    if not key.startswith(FEEDBACK_PREFIX):
        return None
    job, _, rest = key[len(FEEDBACK_PREFIX):].partition("/")
    if rest == RATING_NAME:
        return job, "rating"
    if rest.startswith(CLICKS_DIR) and rest.endswith(".json") and "/" not in rest[len(CLICKS_DIR):]:
        return job, "click"  # the layout before one-per-hour
    return None


class RunSettings(BaseModel):
    """The settings a delivered job ran with, as results.json records them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str | None = None
    method: str | None = None
    train_steps: int | None = None
    steps: int | None = None  # sampling steps
    acceptance_rate: float | None = None
    mode: str | None = None

    @classmethod
    def from_results(cls, doc: Mapping[str, Any] | None) -> RunSettings:
        summary = (doc or {}).get("summary") or {}
        return cls.model_validate({**summary, "method": summary.get("train_method")})

    def group(self) -> tuple[str, str, str, str]:
        """The breakdown's key: model, method, training steps, sampling steps."""
        return (self.model or "?", self.method or "?", str(self.train_steps or "auto"), str(self.steps or "?"))


class Rating(BaseModel):
    """``feedback/<job>/rating.json``: the person's latest rating of their set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    job_id: str
    stars: int = Field(ge=1, le=5)
    favourites: list[str] = Field(default_factory=list, max_length=200)
    rated_at: float
    run: RunSettings = Field(default_factory=RunSettings)

    @field_validator("job_id")
    @classmethod
    def _job(cls, v: str) -> str:
        return validate_job_id(v)

    @field_validator("favourites")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not FILE_NAME.fullmatch(f)]
        if bad:
            raise ValueError("favourites must be file names of the delivered set")
        return sorted(set(v))


class Click(BaseModel):
    """A job's file downloaded (at least once) within an hour (``clicks/<job>/<file>/<hour>.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    file: str
    at: float


# --- aggregation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupRow:
    model: str
    method: str
    train_steps: str
    steps: str
    jobs: int
    ratings: int
    mean_stars: float | None
    mean_acceptance: float | None
    clicks_per_job: float


@dataclass(frozen=True)
class Metrics:
    """What ``headshots metrics`` prints: ratings, clicks per delivered job, the breakdown."""

    delivered_jobs: int
    ratings: int
    distribution: dict[int, int]
    mean_stars: float | None
    clicks: int
    clicks_per_job: float
    median_clicks: float
    jobs_with_a_click: int
    favourites: int
    groups: list[GroupRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered_jobs": self.delivered_jobs, "ratings": self.ratings,
            "distribution": {str(k): v for k, v in self.distribution.items()},
            "mean_stars": self.mean_stars, "clicks": self.clicks, "clicks_per_job": self.clicks_per_job,
            "median_clicks": self.median_clicks, "jobs_with_a_click": self.jobs_with_a_click,
            "favourites": self.favourites, "groups": [row.__dict__ for row in self.groups],
        }


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(statistics.fmean(items), 3) if items else None


def aggregate(delivered: Mapping[str, RunSettings], ratings: Iterable[Rating],
              clicks: Mapping[str, int]) -> Metrics:
    """Pure: delivered jobs (id -> settings), their ratings and click counts -> the report.

    A delivered job whose settings are unknown (results.json already expired) takes them
    from its rating's snapshot. Ratings of jobs not in ``delivered`` still count in the
    distribution; clicks per job are over delivered jobs (the conversion funnel).
    """
    rated = {r.job_id: r for r in ratings}
    runs = {job: (rated[job].run if run == RunSettings() and job in rated else run)
            for job, run in delivered.items()}
    distribution = Counter({k: 0 for k in range(1, 6)})
    distribution.update(r.stars for r in rated.values())
    per_job = [clicks.get(job, 0) for job in delivered]
    groups: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for job in delivered:
        groups[runs[job].group()].append(job)
    rows = []
    for key in sorted(groups):
        jobs = groups[key]
        stars = [rated[j].stars for j in jobs if j in rated]
        acceptance = [runs[j].acceptance_rate for j in jobs if runs[j].acceptance_rate is not None]
        rows.append(GroupRow(*key, jobs=len(jobs), ratings=len(stars), mean_stars=_mean(stars),
                             mean_acceptance=_mean(acceptance),  # type: ignore[arg-type]
                             clicks_per_job=round(sum(clicks.get(j, 0) for j in jobs) / len(jobs), 3)))
    return Metrics(
        delivered_jobs=len(delivered), ratings=len(rated), distribution=dict(sorted(distribution.items())),
        mean_stars=_mean(r.stars for r in rated.values()), clicks=sum(per_job),
        clicks_per_job=round(sum(per_job) / len(per_job), 3) if per_job else 0.0,
        median_clicks=float(statistics.median(per_job)) if per_job else 0.0,
        jobs_with_a_click=sum(1 for n in per_job if n), favourites=sum(len(r.favourites) for r in rated.values()),
        groups=rows)


def render_metrics(m: Metrics) -> str:
    """The report as a person reads it in a terminal."""
    lines = [f"delivered jobs: {m.delivered_jobs}",
             f"ratings:        {m.ratings}" + (f" (mean {m.mean_stars:.2f} stars)" if m.mean_stars else "")]
    top = max(m.distribution.values() or [0]) or 1
    for stars, n in m.distribution.items():
        lines.append(f"  {stars} star{'s' if stars != 1 else ' '}  {n:5d}  {'#' * round(30 * n / top)}")
    lines += [f"download clicks: {m.clicks} ({m.clicks_per_job:.2f} per delivered job, median "
              f"{m.median_clicks:g}; {m.jobs_with_a_click} of {m.delivered_jobs} jobs downloaded anything)",
              f"favourites marked: {m.favourites}", "", "by settings (results.json):"]
    header = ("model", "method", "train steps", "steps", "jobs", "rated", "mean stars", "acceptance", "clicks/job")
    rows = [header] + [(r.model, r.method, r.train_steps, r.steps, str(r.jobs), str(r.ratings),
                        "-" if r.mean_stars is None else f"{r.mean_stars:.2f}",
                        "-" if r.mean_acceptance is None else f"{r.mean_acceptance:.0%}",
                        f"{r.clicks_per_job:.2f}") for r in m.groups]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
