"""Failpoints: the spec grammar, and that a point fires exactly when asked."""

from __future__ import annotations

import pytest

from processor.failpoints import FailpointError, Failpoints, parse_failpoints


def test_spec_parses_points_actions_and_counts() -> None:
    points = parse_failpoints("train.step=kill@3, notify.sent=raise")
    assert points["train.step"].action == "kill" and points["train.step"].nth == 3
    assert points["notify.sent"].nth is None


@pytest.mark.parametrize("spec", ["train.step=explode", "train.step", "=kill", "a=kill@0", "a=kill@x"])
def test_spec_rejects_unknown_actions_and_bad_counts(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_failpoints(spec)


def test_raise_fires_on_the_nth_hit_only() -> None:
    fp = Failpoints("generate.image=raise@2")
    fp.hit("generate.image")
    fp.hit("other.point")
    with pytest.raises(FailpointError):
        fp.hit("generate.image")
    fp.hit("generate.image")  # the third hit passes


def test_without_a_count_it_fires_every_time_and_empty_spec_is_inert() -> None:
    fp = Failpoints("validate.start=raise")
    for _ in range(2):
        with pytest.raises(FailpointError):
            fp.hit("validate.start")
    assert not Failpoints("")
    Failpoints("").hit("validate.start")


def test_pause_stops_the_process_until_it_is_continued() -> None:
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    child = subprocess.Popen([sys.executable, "-c", "from processor.failpoints import Failpoints; "
                              "Failpoints('x=pause').hit('x'); print('resumed')"],
                             stdout=subprocess.PIPE, text=True)
    state = ""
    for _ in range(400):
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            break
        time.sleep(0.05)
    assert state == "T"
    child.send_signal(signal.SIGCONT)
    out, _ = child.communicate(timeout=30)
    assert out.strip() == "resumed"
