"""The notify edge: render the emails from ``templates/`` and send them, once.

Templates are Jinja2 files found with ``importlib.resources`` (checkout, wheel or image alike):
``<kind>.txt`` (first line ``Subject: ...``) and ``<kind>.html`` (autoescaped: a user's name
is data, never markup). Each kind's context is a pydantic model, so a missing field fails at
render time instead of mailing a blank. Sending is :mod:`processor.senders`' (SES or SMTP, under
:mod:`processor.send_rule`); the one-email rule (the send-once marker) is :mod:`processor.notify`'s.
The recipient address is never logged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from importlib.resources import files
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from processor.stages import GATE_ADVICE

EmailKind = Literal["ready", "rejected", "failed", "bad_manifest", "no_likeness"]
KINDS: tuple[str, ...] = ("ready", "rejected", "failed", "bad_manifest", "no_likeness")

#: Plain-words advice per validation gate code: the gate's own sentences, one source of truth.
ADVICE: dict[str, str] = GATE_ADVICE
GENERIC_ADVICE = "Replace it with a different, clear photo of just you."


def advice_for(code: str | None) -> str:
    """What to do about a photo rejected with gate ``code``, in plain words."""
    return ADVICE.get(code or "", GENERIC_ADVICE)


_BREAKS = frozenset({"Cc", "Cs", "Zl", "Zp"})  # control characters, line separators, surrogates


def one_line(text: str) -> str:
    """``text`` with every control character or line break turned into a space, runs of spaces
    collapsed: what a person's name must be wherever it lands (a header, a greeting line)."""
    cleaned = "".join(" " if unicodedata.category(ch) in _BREAKS else ch for ch in text)
    return re.sub(r"\s+", " ", cleaned).strip()


# --- text a person chose, as an email may show it --------------------------------------------
#: A name in a greeting or the To header: a first name, not a sentence.
MAX_NAME_CHARS = 40
#: A photo name in the rejection email.
MAX_PHOTO_NAME_CHARS = 60
#: Photo names the rejection email lists; the rest are counted ("and 7 more").
MAX_LISTED_PHOTOS = 10
#: Other text that may quote a person's input (a failure's reason, a manifest problem).
MAX_DETAIL_CHARS = 300
MAX_PROBLEMS = 10


def shown_text(text: str, limit: int) -> str:
    """Text someone typed, as an email may carry it: without Unicode format characters (bidi
    overrides and isolates, zero-width marks: they can make a name read as something else),
    on one line, and cut to ``limit`` characters. With names cut and lists bounded, nobody can
    turn a service email into an advert of their own."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    line = one_line(visible)
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


# --- contexts ---------------------------------------------------------------------------
class _Context(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name_on_one_line(cls, name: str | None) -> str | None:
        # The manifest refuses control characters; this holds for any other caller too.
        return (shown_text(name, MAX_NAME_CHARS) or None) if name is not None else None


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    url: str


class InlineImage(BaseModel):
    """An image carried inside the message (``multipart/related``), shown by ``cid:`` reference."""

    model_config = ConfigDict(frozen=True)

    cid: str = Field(pattern=r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+$")  # without the angle brackets
    data: bytes = Field(min_length=1)
    subtype: Literal["jpeg", "png"] = "jpeg"


class ReadyContext(_Context):
    """Email v2: a preview, one button to the gallery, the zip, a rating row, the expiry date."""

    headshot_count: int = Field(ge=1)
    gallery_url: str
    contact_sheet_url: str
    zip_url: str
    rating_urls: list[Link] = Field(default_factory=list)  # label: the stars, 1..5
    link_ttl_s: int = Field(gt=0)
    expires_at: int = Field(gt=0, description="epoch seconds when every link in the email stops working")
    preview: InlineImage | None = None
    selection_note: str | None = None
    portraits: bool = False  # the job asked for (and got) 4:5 portrait crops beside the squares

    @property
    def preview_cid(self) -> str | None:
        return self.preview.cid if self.preview else None

    @property
    def expires_text(self) -> str:
        """``Tuesday 14 July 2026, 09:30 UTC``: the exact moment, not only a duration."""
        when = datetime.fromtimestamp(self.expires_at, tz=timezone.utc)
        return f"{when:%A} {when.day} {when:%B %Y, %H:%M} UTC"

    @property
    def link_ttl_text(self) -> str:
        days, hours = self.link_ttl_s / 86400, self.link_ttl_s / 3600
        if days >= 1:
            return f"{days:g} day{'s' if days != 1 else ''}" if days == int(days) else f"{days:.1f} days"
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''}" if hours >= 1 else \
            f"{self.link_ttl_s // 60} minutes"


class RejectedPhoto(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # the person's own file name (an upload's key may hold any character: one line)
    reason: str
    advice: str = GENERIC_ADVICE
    code: str | None = None  # the gate's reason code; "missing": we never received the file

    @field_validator("name")
    @classmethod
    def _name_on_one_line(cls, name: str) -> str:
        return shown_text(name, MAX_PHOTO_NAME_CHARS) or shown_text(repr(name), MAX_PHOTO_NAME_CHARS)


class RejectedContext(_Context):
    bad_photos: list[RejectedPhoto] = Field(default_factory=list)
    usable: int = Field(0, ge=0)
    required: int = Field(10, ge=1)
    problem: str | None = None  # a reason not tied to one photo (e.g. a bad manifest)

    @property
    def needed(self) -> int:
        return max(0, self.required - self.usable)

    @property
    def listed_photos(self) -> list[RejectedPhoto]:
        """The photos the email names (at most :data:`MAX_LISTED_PHOTOS`)."""
        return self.bad_photos[:MAX_LISTED_PHOTOS]

    @property
    def unlisted(self) -> int:
        """Rejected photos the email counts but does not name."""
        return max(0, len(self.bad_photos) - MAX_LISTED_PHOTOS)

    @property
    def never_received(self) -> list[str]:
        """Photos the manifest listed that never arrived (of those named): the upload's fault."""
        return [p.name for p in self.listed_photos if p.code == "missing"]


class FailedContext(_Context):
    """Our fault (a crash, a timeout, a lost worker): the person need not change anything."""

    reason: str
    attempts: int = Field(1, ge=1)

    @field_validator("reason")
    @classmethod
    def _plain_reason(cls, reason: str) -> str:
        return shown_text(reason, MAX_DETAIL_CHARS) or "unknown error"


class BadManifestContext(_Context):
    """The upload's manifest.json was unreadable or broke the schema: the person fixes it.

    ``problems``: one line per thing to fix (:attr:`processor.errors.ManifestError.problems`)."""

    problems: list[str] = Field(min_length=1)

    @field_validator("problems")
    @classmethod
    def _plain_problems(cls, problems: list[str]) -> list[str]:
        # A problem may quote the manifest (a photo name): shown plainly, and a bounded few.
        return [shown_text(p, MAX_DETAIL_CHARS) or "?" for p in problems[:MAX_PROBLEMS]]


class NoLikenessContext(_Context):
    """The photos were accepted, training ran, but no generated headshot passed the likeness
    check: nothing to fix in the upload as such, but different photos are what helps."""

    generated: int = Field(ge=1)  # images made and scored, none delivered
    photos_used: int = Field(0, ge=0)  # the person's photos we trained on


CONTEXTS: dict[str, type[_Context]] = {"ready": ReadyContext, "rejected": RejectedContext,
                                       "failed": FailedContext, "bad_manifest": BadManifestContext,
                                       "no_likeness": NoLikenessContext}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    inline: tuple[InlineImage, ...] = ()  # parts the HTML shows by cid:


def _load_template(name: str) -> str | None:
    resource = files("templates").joinpath(name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(_load_template),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_email(kind: str, context: _Context | Mapping[str, Any]) -> RenderedEmail:
    """Render the ``kind`` email (ready, rejected, failed) from its context model or a dict."""
    if kind not in CONTEXTS:
        raise ValueError(f"unknown email kind {kind!r}; expected one of {', '.join(KINDS)}")
    model = CONTEXTS[kind]
    ctx = context if isinstance(context, model) else model.model_validate(
        context.model_dump() if isinstance(context, BaseModel) else dict(context))
    values = {**ctx.model_dump(exclude={"preview"}),
              **{p: getattr(ctx, p) for p in ("link_ttl_text", "needed", "never_received", "preview_cid",
                                              "expires_text", "listed_photos", "unlisted") if hasattr(ctx, p)}}
    text = _ENV.get_template(f"{kind}.txt").render(values)
    html = _ENV.get_template(f"{kind}.html").render(values)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"templates/{kind}.txt must start with a 'Subject: ' line")
    inline = (ctx.preview,) if isinstance(ctx, ReadyContext) and ctx.preview is not None else ()
    return RenderedEmail(subject=first[len("Subject: "):].strip(), text=body.lstrip("\n"), html=html,
                         inline=inline)


#: Longest display name put in ``To``: folding a long non-ASCII name costs the stdlib seconds
#: (2,000 characters: ~4 s; 10,000: ~24 s), and a name is a first name, so longer ones are cut.
MAX_DISPLAY_NAME = MAX_NAME_CHARS


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (e.g. from an OS error naming an undecodable file) replaced,
    so the UTF-8 body encoder can never raise."""
    return text.encode("utf-8", "replace").decode("utf-8")


def build_message(rendered: RenderedEmail, sender: str, recipient: str, *, job_id: str | None = None,
                  recipient_name: str | None = None) -> EmailMessage:
    """A multipart/alternative MIME message: plain text first, HTML preferred by clients.

    Inline images go beside the HTML in a ``multipart/related`` part, so clients show them
    without fetching anything (and the plain-text part stays whole on its own). Header values
    are made safe here whatever the caller passes: a display name or subject with CR/LF or
    other control characters is put on one line (never a new header, never an exception), and
    non-ASCII names are encoded by the email policy; bodies are made encodable (a lone
    surrogate becomes ``?``). Only an unusable ``recipient`` address raises (``ValueError``):
    that is a bug upstream, not user data.
    """
    if not recipient or one_line(recipient) != recipient or "@" not in recipient:
        raise ValueError("recipient must be a single email address")
    user, _, domain = recipient.rpartition("@")
    msg = EmailMessage()
    msg["Subject"] = one_line(rendered.subject)
    msg["From"] = sender
    display = shown_text(recipient_name or "", MAX_DISPLAY_NAME)  # header folding is superlinear in it
    msg["To"] = Address(display_name=display, username=user, domain=domain)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    if job_id:
        msg["X-Headshots-Job"] = one_line(job_id)
    msg.set_content(_encodable(rendered.text))
    msg.add_alternative(_encodable(rendered.html), subtype="html")
    if rendered.inline:
        html_part = msg.get_payload()[1]
        for image in rendered.inline:
            html_part.add_related(image.data, "image", image.subtype, cid=f"<{image.cid}>",
                                  disposition="inline", filename=f"preview.{image.subtype.replace('jpeg', 'jpg')}")
    return msg
