"""``headshots validate DIR [--json]``: one JSON object, exit 0 either way, 2 on misuse."""

from __future__ import annotations

import json
import shutil

from processor.cli import main


def test_json_output_has_the_promised_shape_and_exit_zero_when_rejected(tmp_path, people, capsys):
    for p in people.obama[:3]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "notes.jpg").write_text("<html>not a photo</html>")
    assert main(["validate", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert out["accepted"] is False and out["usable"] == 3
    assert [p["file"] for p in out["photos"]] == sorted(p.name for p in tmp_path.iterdir())
    for p in out["photos"]:
        assert isinstance(p["ok"], bool) and isinstance(p["message"], str) and p["message"]
        assert p["reason"] in (None, "unreadable")
    assert next(p for p in out["photos"] if p["file"] == "notes.jpg")["reason"] == "unreadable"
    assert "7 more good photos" in out["message"]


def test_human_output_lists_each_photo(tmp_path, people, capsys):
    shutil.copy(people.obama[0], tmp_path / "me.jpg")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("REJECTED: 1 usable of 1.") and "me.jpg" in out


def test_missing_or_empty_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert main(["validate", str(tmp_path)]) == 2
    assert "not a directory" in capsys.readouterr().err
