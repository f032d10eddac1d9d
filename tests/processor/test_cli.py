"""The CLI dispatcher: behaviour shared by every subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.cli import main


@pytest.mark.parametrize("argv", [["validate", "."], ["status", "job-1"], ["worker", "--check-health"]])
def test_a_bad_setting_ends_any_command_with_one_readable_line_and_status_2(
        argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setenv("HEADSHOTS_RESOLUTION", "1001")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"not looked at: the settings fail first")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "HEADSHOTS_RESOLUTION" in err and "Traceback" not in err
