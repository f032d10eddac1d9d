"""``headshots validate DIR [--json]``: run the photo quality gate on a folder.

Exit status 0 whether the set is accepted or not (the verdict is in the output); 2 for
usage errors such as a missing folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Skipped:
    """An entry of the folder the gate does not look at, and why (nothing vanishes silently)."""

    file: str
    reason: str  # hidden | dangling_link | not_a_file
    message: str


_SKIP_MESSAGES = {
    "hidden": "Hidden file (its name starts with a dot): not a photo we look at.",
    "dangling_link": "A link to a file that does not exist: nothing to read.",
    "not_a_file": "Not a regular file (a folder, device or pipe): not a photo.",
}


# What the gate looks at in a folder: anything that is not hidden. Non-images are kept on
# purpose, so a renamed HTML page or a PDF shows up as "unreadable" instead of vanishing.
def scan_folder(folder: Path) -> tuple[list[Path], list[Skipped]]:
    """The files the gate checks (regular, non-hidden, links followed; sorted by name: the
    gate's order) and every other entry of ``folder`` with the reason it is skipped."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            reason = "hidden"
        elif p.is_symlink() and not p.exists():
            reason = "dangling_link"
        elif not p.is_file():
            reason = "not_a_file"
        else:
            files.append(p)
            continue
        skipped.append(Skipped(p.name, reason, _SKIP_MESSAGES[reason]))
    return files, skipped


def photo_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files in ``folder``, sorted by name (the gate's order)."""
    return scan_folder(folder)[0]


def _print_human(report_dict: dict) -> None:  # type: ignore[type-arg]
    verdict = "ACCEPTED" if report_dict["accepted"] else "REJECTED"
    print(f"{verdict}: {report_dict['usable']} usable of {len(report_dict['photos'])}. "
          f"{report_dict['message']}")
    for p in report_dict["photos"]:
        mark = "ok " if p["ok"] else "NO "
        code = p["reason"] or ("selected" if p["selected"] else "spare")
        print(f"  {mark} {p['file']:<32} {code:<18} {p['message']}")
    for skip in report_dict.get("skipped", []):
        print(f"  --  {skip['file']:<32} {'skipped: ' + skip['reason']:<18} {skip['message']}")


def _run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"headshots validate: {folder} is not a directory", file=sys.stderr)
        return 2
    files, skipped = scan_folder(folder)
    if not files:
        print(f"headshots validate: {folder} has no files"
              + (f" ({len(skipped)} skipped: " + ", ".join(f"{k.file} ({k.reason})" for k in skipped) + ")"
                 if skipped else ""), file=sys.stderr)
        return 2

    from handlers.faces import FaceModelConfig
    from handlers.validate.config import ValidateConfig
    from handlers.validate.gate import validate_photos
    from processor.commands.assets import resolve_deepface_home
    from processor.logging import configure_logging
    from processor.settings import load_settings

    settings = load_settings()
    configure_logging("console", "WARNING" if not args.verbose else "INFO")  # logs -> stderr
    home = resolve_deepface_home(settings.deepface_home)
    face = FaceModelConfig(detector=settings.face_detector, recognizer=settings.face_recognizer,
                           weights_home=home)
    report = validate_photos(files, ValidateConfig(face=face))
    data = {**report.to_dict(), "skipped": [asdict(k) for k in skipped]}
    if args.json:
        print(json.dumps(data))
    else:
        _print_human(data)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("validate", help="check a folder of photos with the quality gate")
    p.add_argument("dir", help="folder of photos")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="log each photo's measurements (stderr)")
    p.set_defaults(handler=_run)
