"""Capacity: today's scaling policies against the fixed ones, simulated as Terraform writes them.

Both policy sets are parsed from .tf files (``bench/capacity_policy.py``): "fixed" from
``terraform/modules/compute`` (scaling.tf, variables.tf), "today" from ``bench/capacity_before/``,
a verbatim copy of the same two files at commit 81ab84b (before issue 13). maxReceiveCount and
the on-demand share come from the module variables too. The workload and the world around the
policies (``bench/capacity_sim.py``):
- Poisson arrivals over one day whose rate follows a raised cosine from ``--trough`` x the load
  at midnight to the load (the peak hour) at noon; the fleet starts at zero;
- job GPU time per stage from docs/performance.md's phase table (H100, default step rule:
  ~810 s = 13.5 min), divided by ``--gpu-speed`` (1 = H100);
- instance boot plus image pull uniform in [--boot-min, --boot-max] minutes (published figures
  for 15-20 GB images: 4-10 min) after a minute of capacity-provider reaction;
- spot interruptions at ``--spot-rate`` per spot instance-hour (default 0.02, a stress figure: AWS
  Spot Advisor's worst bucket, ">20% a month", is ~0.0003/h), losing the stage in progress.

``max_workers`` for each load is stated (square-root staffing on the peak hour's GPU demand,
a = load x job hours: ceil(a + 3 sqrt(a)) + 2) unless given. Both policy sets run at it, on the
same arrivals. The fixed policy also runs at the module's own default max_workers at
``--default-cap-load`` jobs/hour (4 workers cannot hold 100 jobs/hour). Prints ONE JSON line;
seeded and deterministic.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.capacity_policy import load_policies, read_variable_defaults  # noqa: E402
from bench.capacity_sim import Fleet, Result, Simulation  # noqa: E402

FIXED_DIR = REPO / "terraform" / "modules" / "compute"
BEFORE_DIR = REPO / "bench" / "capacity_before"
STORAGE_DIR = REPO / "terraform" / "modules" / "storage_messaging"
PERFORMANCE_MD = REPO / "docs" / "performance.md"
DAY_S = 86400.0
# docs/performance.md phase rows -> the worker's checkpointed stages (a stage is lost whole).
STAGE_ROWS = {"prepare": ("load models", "class prior"), "train": ("train",),
              "generate": ("load trained pipeline", "generate")}


def job_stages_from_doc(path: Path = PERFORMANCE_MD,
                        column: str = "optimized, today's step rule") -> dict[str, float]:
    """Seconds per stage on an H100, read from the 'job, phase by phase' table."""
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")]
    header = next(ln for ln in lines if column in ln)
    idx = [c.strip() for c in header.strip("|").split("|")].index(next(
        c.strip() for c in header.strip("|").split("|") if column in c))
    rows: dict[str, float] = {}
    for ln in lines[lines.index(header) + 1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) <= idx:
            continue
        m = re.search(r"(\d+(?:\.\d+)?)\s*s\b", cells[idx])
        if m:
            rows[cells[0].strip("* ")] = float(m.group(1))
    stages = {name: sum(next(v for k, v in rows.items() if k.startswith(r)) for r in parts)
              for name, parts in STAGE_ROWS.items()}
    total = next(v for k, v in rows.items() if k.startswith("total"))
    if abs(sum(stages.values()) - total) > 1:
        raise ValueError(f"{path}: stages {stages} do not add up to the total {total} s")
    return stages


def arrivals(rate_per_h: float, hours: float, trough: float, seed: int) -> list[float]:
    """Poisson arrivals (thinning) at rate(t) = load x (trough + (1-trough)(1-cos 2 pi t/day)/2)."""
    rng = random.Random(f"{seed}-arrivals-{rate_per_h}")
    out, t, peak = [], 0.0, rate_per_h / 3600
    while True:
        t += rng.expovariate(peak)
        if t >= hours * 3600:
            return out
        shape = trough + (1 - trough) * (1 - math.cos(2 * math.pi * t / DAY_S)) / 2
        if rng.random() < shape:
            out.append(t)


def stated_max_workers(rate_per_h: float, job_s: float) -> int:
    a = rate_per_h * job_s / 3600
    return math.ceil(a + 3 * math.sqrt(a)) + 2


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def summarize(r: Result) -> dict[str, Any]:
    done = max(1, r.jobs - r.unfinished)
    per_job = {k: round(v / 3600 / done, 4) for k, v in (("work", r.work_s), ("boot", r.boot_s), ("idle", r.idle_s))}
    per_job["total"] = round(sum(per_job.values()), 4)
    minutes = [x / 60 for x in r.latencies_s]
    return {
        "p50_min": _r(percentile(minutes, 50)), "p95_min": _r(percentile(minutes, 95)),
        "p99_min": _r(percentile(minutes, 99)),
        "gpu_hours_per_job": per_job,
        "cost_overhead_pct": round(100 * (r.boot_s + r.idle_s) / r.work_s, 1) if r.work_s else None,
        "peak_fleet": r.peak_fleet, "dlq": r.dlq, "unfinished": r.unfinished, "interruptions": r.interruptions,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def run(loads: list[float], max_workers: list[int] | None = None, *, hours: float = 24, trough: float = 0.3,
        seed: int = 7, gpu_speed: float = 1.0, boot_min: float = 4, boot_max: float = 10,
        spot_rate: float = 0.02, metric_lag_min: int = 2, handback_spends_receive: bool = False,
        default_cap_load: float = 100,
        fixed_dir: Path = FIXED_DIR, before_dir: Path = BEFORE_DIR, storage_dir: Path = STORAGE_DIR,
        performance_md: Path = PERFORMANCE_MD) -> dict[str, Any]:
    stages = job_stages_from_doc(performance_md)
    job_s = sum(stages.values()) / gpu_speed
    storage = read_variable_defaults(storage_dir / "variables.tf")

    def simulate(module: Path, cap: int | None, jobs: list[float]) -> dict[str, Any]:
        policies = load_policies(module, {} if cap is None else {"max_workers": cap})
        fleet = Fleet(boot_min_s=boot_min * 60, boot_max_s=boot_max * 60,
                      spot_fraction=1 - float(policies.variables["on_demand_percentage_above_base"]) / 100,
                      spot_interruptions_per_hour=spot_rate, gpu_speed=gpu_speed,
                      metric_lag_min=metric_lag_min, max_receive_count=int(storage["max_receive_count"]),
                      handback_spends_receive=handback_spends_receive)
        sim = Simulation(policies, fleet, jobs, list(stages.values()), seed)
        return {"max_workers": policies.max_capacity, **summarize(sim.run(max_s=hours * 3600 + 7 * DAY_S))}

    out_loads = []
    for i, load in enumerate(loads):
        cap = max_workers[i] if max_workers else stated_max_workers(load, job_s)
        jobs = arrivals(load, hours, trough, seed)
        entry: dict[str, Any] = {"jobs_per_hour_peak": load, "max_workers": cap, "jobs": len(jobs)}
        for label, module in (("today", before_dir), ("fixed", fixed_dir)):
            entry[label] = simulate(module, cap, jobs)
            del entry[label]["max_workers"]
        today, fixed = entry["today"]["gpu_hours_per_job"]["total"], entry["fixed"]["gpu_hours_per_job"]["total"]
        entry["fixed_vs_today_gpu_hours_pct"] = round(100 * (fixed - today) / today, 1) if today else None
        out_loads.append(entry)
    # The module's own default max_workers at default_cap_load jobs/hour (the fixed policy).
    default_cap = simulate(fixed_dir, None, arrivals(default_cap_load, hours, trough, seed)) if default_cap_load else None
    return {
        "bench": "capacity", "seed": seed, "hours": hours, "trough": trough,
        "job_gpu_min": round(job_s / 60, 2), "stages_s_h100": stages, "gpu_speed": gpu_speed,
        "boot_min": [boot_min, boot_max], "spot_interruptions_per_hour": spot_rate,
        "metric_lag_min": metric_lag_min, "handback_spends_receive": handback_spends_receive,
        "sources": {"today": _rel(before_dir), "fixed": _rel(fixed_dir), "storage": _rel(storage_dir),
                    "job_time": _rel(performance_md)},
        "loads": out_loads,
        "module_default_max_workers": None if default_cap is None else {
            "jobs_per_hour_peak": default_cap_load, **default_cap},
        "fixed_p95_under_60_min": all(e["fixed"]["p95_min"] is not None and e["fixed"]["p95_min"] < 60
                                      and e["fixed"]["unfinished"] == 0 for e in out_loads),
    }


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loads", default="10,100,1000", help="peak-hour jobs per hour, comma-separated")
    ap.add_argument("--max-workers", default="", help="max_workers per load (default: stated by the sizing rule)")
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--trough", type=float, default=0.3, help="night rate as a share of the peak hour's")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gpu-speed", type=float, default=1.0, help="GPU speed relative to an H100")
    ap.add_argument("--boot-min", type=float, default=4.0, help="minutes: instance boot + image pull, low")
    ap.add_argument("--boot-max", type=float, default=10.0, help="minutes: instance boot + image pull, high")
    ap.add_argument("--spot-rate", type=float, default=0.02, help="interruptions per spot instance-hour")
    ap.add_argument("--metric-lag-min", type=int, default=2)
    ap.add_argument("--handback-spends", action="store_true",
                    help="each spot hand-back spends a receive (the worker before it re-enqueued a fresh copy)")
    ap.add_argument("--default-cap-load", type=float, default=100,
                    help="also run the fixed policy at the module's default max_workers at this load (0: skip)")
    ap.add_argument("--fixed-dir", type=Path, default=FIXED_DIR)
    ap.add_argument("--before-dir", type=Path, default=BEFORE_DIR)
    args = ap.parse_args(argv)
    loads = [float(x) for x in args.loads.split(",")]
    caps = [int(x) for x in args.max_workers.split(",")] if args.max_workers else None
    if caps is not None and len(caps) != len(loads):
        ap.error("--max-workers needs one value per load")
    start = time.perf_counter()
    out = run(loads, caps, hours=args.hours, trough=args.trough, seed=args.seed, gpu_speed=args.gpu_speed,
              boot_min=args.boot_min, boot_max=args.boot_max, spot_rate=args.spot_rate,
              metric_lag_min=args.metric_lag_min, handback_spends_receive=args.handback_spends,
              default_cap_load=args.default_cap_load,
              fixed_dir=args.fixed_dir, before_dir=args.before_dir)
    out["wall_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
