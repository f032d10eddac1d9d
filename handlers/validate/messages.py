"""What the person is told: each reason code in plain words plus what to do about it.

These strings reach the rejection email and the CLI, so they avoid jargon ("Laplacian",
"embedding") and always end with an action the person can take with their phone.
"""

from __future__ import annotations

# Reason codes in the order the gate checks them (the first that fails is reported).
REASON_ORDER: tuple[str, ...] = (
    "missing", "unreadable", "unsupported_format", "too_large", "too_small", "no_face",
    "face_cut", "multiple_faces", "face_too_small", "blurry", "too_dark", "too_bright",
    "face_covered", "eyes_covered", "duplicate", "different_person",
)

ADVICE: dict[str, str] = {
    "missing": "Its upload failed or had not finished when manifest.json arrived. Upload it "
               "again and wait until it is done, then upload manifest.json last (or leave the "
               "file out of manifest.json's list).",
    "unreadable": "We could not open this file as a photo (it may be damaged or not a "
                  "picture). Upload the original photo again: a JPEG, HEIC, PNG or WebP.",
    "unsupported_format": "We don't take this kind of file. We take photos as JPEG, HEIC "
                          "(an iPhone's own), PNG or WebP: upload the photo as your phone "
                          "or camera saved it, or export a copy as a JPEG.",
    "too_large": "This file is too big (over 25 MB or 50 megapixels, or too big to open for a "
                 "PNG or WebP). Upload the photo as your phone saved it, or a smaller JPEG copy.",
    "too_small": "This photo is too small: we need at least 512 pixels on the short side. "
                 "Upload the original photo, not a thumbnail or a screenshot.",
    "no_face": "We couldn't find a face. Take a photo looking at the camera with your whole "
               "face visible: no sunglasses, mask or hand in front of it.",
    "face_cut": "The edge of the photo cuts through your face. Take one with your whole "
                "head in the picture, with a little space around it.",
    "multiple_faces": "There is more than one person in this photo, or another face close to "
                      "yours. Crop it to just you, or take one of you alone.",
    "face_too_small": "Your face is too small in this photo. Move closer, or crop it so your "
                      "head and shoulders fill most of the picture.",
    "face_covered": "Something covers the lower part of your face (a mask, a hand, a scarf). "
                    "Take one with your mouth and chin uncovered.",
    "eyes_covered": "Your eyes are hidden (sunglasses or something else over them). Take one "
                    "without sunglasses, looking at the camera; clear glasses you always wear "
                    "are fine.",
    "blurry": "Your face is blurry. Hold the phone steady, tap your face on the screen to "
              "focus, and take it in good light.",
    "too_dark": "Your face is too dark. Take it facing a window or another soft light, "
                "not with the light behind you.",
    "too_bright": "Your face is washed out by too much light. Avoid direct sun and flash; "
                  "stand in the shade or facing a window.",
    "duplicate": "This is the same shot as another of your photos. Replace it with a "
                 "different one: another day, outfit, angle or background.",
    "different_person": "This face doesn't match the person in your other photos. Upload "
                        "only photos of yourself.",
}

# The problem in a few words, for lists where ADVICE follows (the rejection email).
LABELS: dict[str, str] = {
    "missing": "We never received this file.",
    "unreadable": "Not a readable photo.",
    "unsupported_format": "File type not supported.",
    "too_large": "File too large.",
    "too_small": "Photo too small.",
    "no_face": "No face found.",
    "face_cut": "Face cut off by the edge.",
    "multiple_faces": "More than one person.",
    "face_too_small": "Face too small.",
    "face_covered": "Face covered.",
    "eyes_covered": "Eyes covered.",
    "blurry": "Face not sharp.",
    "too_dark": "Face too dark.",
    "too_bright": "Face overexposed.",
    "duplicate": "Same shot as another photo.",
    "different_person": "A different person.",
}

OK_MESSAGE = "Good photo."
OK_SPARE_MESSAGE = "Good photo (not needed: we train on the best {limit})."


def photo_message(reason: str | None, duplicate_of: str | None = None,
                  selected: bool = True, limit: int = 20) -> str:
    """The sentence shown next to one photo."""
    if reason is None:
        return OK_MESSAGE if selected else OK_SPARE_MESSAGE.format(limit=limit)
    text = ADVICE[reason]
    if reason == "duplicate" and duplicate_of:
        text = text.replace("another of your photos", duplicate_of)
    return text


def set_message(accepted: bool, usable: int, needed: int, min_usable: int,
                conflict: bool, majority: int, second: int) -> str:
    """The one-paragraph verdict on the whole set."""
    if conflict:
        return (f"These photos show more than one person ({majority} of one person and "
                f"{second} of another). Upload {min_usable} to 20 photos of only yourself.")
    if accepted:
        return f"{usable} good photos: enough to make your headshots."
    more = "1 more good photo" if needed == 1 else f"{needed} more good photos"
    return (f"We need at least {min_usable} good photos of you and {usable} of yours can be "
            f"used. Please add {more}, or replace the photos listed below.")
