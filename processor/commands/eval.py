"""``headshots eval RESULTS_DIR [--photos DIR]``: offline quality metrics of a delivered job.

Prints identity against the photos held out of training (the judge: the selector never
saw them), apart from identity against the photos selection used, and says plainly when
nothing was held out; then diversity and faces found; CLIP-T / CLIP-I / DINO when local
weights are given (``--clip-model`` / ``--dino-model`` or ``HEADSHOTS_EVAL_CLIP_MODEL`` /
``HEADSHOTS_EVAL_DINO_MODEL``); and, for every delivered JPEG, both AI-made marks: the XMP
label and the invisible watermark, read as delivered and after a quality-75 re-encode.
Without ``--photos`` only the marks are checked. ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="offline metrics of a results folder against the user's photos",
                                   description=__doc__)
    parser.add_argument("results_dir", type=Path, help="folder with headshot-NNN.jpg and results.json")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder with the user's photos (without it: only the AI-made marks are checked)")
    parser.add_argument("--clip-model", type=Path, default=None, help="local CLIP model folder")
    parser.add_argument("--dino-model", type=Path, default=None, help="local DINO ViT model folder")
    parser.add_argument("--threshold", type=float, default=None,
                        help="identity cosine-distance line (default HEADSHOTS_SELECTION_THRESHOLD, "
                             "else the recognizer's)")
    parser.add_argument("--no-faces", action="store_true", help="skip the face-recognition metrics")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from handlers.evaluate import (
        EvalConfig,
        delivered_jpegs,
        evaluate,
        format_marks,
        format_report,
        held_out_files,
        held_out_identity,
        held_out_split,
        list_photos,
        mark_report,
        read_results,
    )
    from handlers.images import ImageError, load_image
    from processor.commands.assets import resolve_deepface_home
    from processor.logging import configure_logging
    from processor.settings import load_settings

    settings = load_settings()
    configure_logging("console", "WARNING")  # logs -> stderr; stdout holds the figures
    files, prompts = read_results(args.results_dir)
    if not files:
        print(f"no headshot-*.jpg in {args.results_dir}", file=sys.stderr)
        return 2
    marks = mark_report(delivered_jpegs(args.results_dir))
    if args.photos is None:
        print(json.dumps({"headshots": len(files), "marks": marks}) if args.json
              else "\n".join([f"headshots: {len(files)}", *format_marks(marks)]))
        return 0
    photo_paths = list_photos(args.photos) if args.photos.is_dir() else []
    if not photo_paths:
        print(f"no photos in {args.photos}", file=sys.stderr)
        return 2
    photos = []
    names = []
    for path in photo_paths:
        try:
            photos.append(load_image(path, max_side=2048))
            names.append(path.name)
        except ImageError as exc:
            print(f"skipping {path.name}: {exc.message}", file=sys.stderr)
    held_idx, refs_idx, note = held_out_split(names, held_out_files(args.results_dir))
    held_out = [photos[i] for i in held_idx]
    photos = [photos[i] for i in refs_idx]  # the selection's references: the training photos
    if not photos:
        photos = held_out
    headshots = [load_image(p) for p in files]
    analyzer = None
    if not args.no_faces:
        from handlers.faces import FaceAnalyzer, FaceModelConfig

        analyzer = FaceAnalyzer(FaceModelConfig(detector=settings.face_detector,
                                                recognizer=settings.face_recognizer,
                                                weights_home=resolve_deepface_home(settings.deepface_home)))
    threshold = args.threshold if args.threshold is not None else settings.selection_threshold
    config = EvalConfig(clip_model=args.clip_model or settings.eval_clip_model,
                        dino_model=args.dino_model or settings.eval_dino_model, threshold=threshold)
    report = evaluate(headshots, photos, prompts, analyzer, config)
    report.marks = marks
    if analyzer is not None:
        report.held_out = held_out_identity(headshots, held_out, analyzer, config, note,
                                            [names[i] for i in held_idx])
    else:
        report.held_out = {"count": 0, "note": note or "no face analyzer (--no-faces)"}
    print(json.dumps(report.to_dict()) if args.json else format_report(report))
    return 0
