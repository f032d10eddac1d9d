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


def test_json_lists_every_skipped_entry_and_why(tmp_path, people, capsys):
    """Issue 15: a dangling link (and hidden files, folders) never vanish from the report."""
    import os

    shutil.copy(people.obama[0], tmp_path / "me.jpg")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "deleted-original.jpg")
    (tmp_path / "linked.jpg").symlink_to(tmp_path / "me.jpg")  # a link to a photo is a photo
    (tmp_path / "album").mkdir()
    os.mkfifo(tmp_path / "pipe.jpg")
    assert main(["validate", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["file"] for p in out["photos"]] == ["linked.jpg", "me.jpg"]
    assert {(k["file"], k["reason"]) for k in out["skipped"]} == {
        (".DS_Store", "hidden"), ("gone.jpg", "dangling_link"), ("album", "not_a_file"),
        ("pipe.jpg", "not_a_file")}
    assert all(k["message"] for k in out["skipped"])


def test_a_folder_with_only_skipped_entries_says_what_was_skipped(tmp_path, capsys):
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert main(["validate", str(tmp_path)]) == 2
    assert "gone.jpg (dangling_link)" in capsys.readouterr().err


def test_an_iphone_heic_is_checked_like_any_photo(tmp_path, people, capsys):
    """A 12 MP HEIC, stored sideways with its rotation, as an iPhone writes it: judged on its
    face (before: unsupported_format without the optional decoder, too_large with it)."""
    from PIL import Image

    from processor.devkit.samples import write_heic

    write_heic(Image.open(people.obama[0]), tmp_path / "IMG_0001.HEIC", (3464, 3464))
    assert main(["validate", str(tmp_path), "--json"]) == 0
    photo = json.loads(capsys.readouterr().out)["photos"][0]
    assert photo["file"] == "IMG_0001.HEIC" and photo["reason"] is None, photo
