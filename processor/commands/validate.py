"""``headshots validate DIR [--json]``: run the photo quality gate on a folder.

Exit status 0 whether the set is accepted or not (the verdict is in the output); 2 for
usage errors such as a missing folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# What the gate looks at in a folder: anything that is not hidden. Non-images are kept on
# purpose, so a renamed HTML page or a PDF shows up as "unreadable" instead of vanishing.
def photo_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files in ``folder``, sorted by name (the gate's order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _print_human(report_dict: dict) -> None:  # type: ignore[type-arg]
    verdict = "ACCEPTED" if report_dict["accepted"] else "REJECTED"
    print(f"{verdict}: {report_dict['usable']} usable of {len(report_dict['photos'])}. "
          f"{report_dict['message']}")
    for p in report_dict["photos"]:
        mark = "ok " if p["ok"] else "NO "
        code = p["reason"] or ("selected" if p["selected"] else "spare")
        print(f"  {mark} {p['file']:<32} {code:<18} {p['message']}")


def _run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"headshots validate: {folder} is not a directory", file=sys.stderr)
        return 2
    files = photo_files(folder)
    if not files:
        print(f"headshots validate: {folder} has no files", file=sys.stderr)
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
    data = report.to_dict()
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
