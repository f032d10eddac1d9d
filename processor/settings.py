"""Service settings: ``HEADSHOTS_*`` environment variables, validated once at start-up.

The same names are the Terraform outputs and the container's environment. A bad value stops
the process with one clear line per problem (see :func:`load_settings`), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from processor.errors import SettingsError

_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


#: The delivery formats a job may ask for (handlers/crops.py cuts them), square first. Every job
#: gets its squares; "portrait" adds a 4:5 crop of each image.
DeliveryFormat = Literal["square", "portrait"]
DELIVERY_FORMATS: tuple[str, ...] = ("square", "portrait")


def checked_formats(formats: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``formats`` in delivery order; refused when a name repeats or the square is missing."""
    if len(set(formats)) != len(formats):
        raise ValueError("each format may be named once")
    if "square" not in formats:
        raise ValueError('must include "square" (every job gets its square headshots; add "portrait" '
                         "for 4:5 crops of the same images)")
    return tuple(name for name in DELIVERY_FORMATS if name in formats)


#: Settings read from a variable that someone else sets, under that variable's own name.
_UNPREFIXED_ENV = {"ecs_agent_uri": "ECS_AGENT_URI"}


class Settings(BaseSettings):
    """Everything the worker, the CLI and the local stack read from the environment."""

    model_config = SettingsConfigDict(env_prefix="HEADSHOTS_", extra="ignore", frozen=True)

    # --- AWS -------------------------------------------------------------------------
    input_bucket: str = Field("headshots-input", pattern=_BUCKET_PATTERN,
                              description="bucket holding uploads/<job>/")
    output_bucket: str = Field("headshots-output", pattern=_BUCKET_PATTERN,
                               description="bucket holding jobs/<job>/ and results/<job>/")
    queue_url: str = Field("", description="SQS job queue URL (empty: resolved by the local stack)")
    dlq_url: str = Field("", description="dead-letter queue URL, for operators and tests")
    aws_region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    aws_endpoint_url: str | None = Field(None, description="e.g. http://127.0.0.1:5000 for moto")

    # --- queue and ownership ---------------------------------------------------------
    visibility_timeout_s: int = Field(120, ge=2, le=43200,
                                      description="visibility set on receive and by each heartbeat")
    heartbeat_interval_s: float = Field(30.0, gt=0, description="how often visibility and the lease are renewed")
    wait_time_s: int = Field(10, ge=0, le=20, description="SQS long-poll wait")
    max_receive_count: int = Field(3, ge=1, le=1000,
                                   description="the queue's redrive maxReceiveCount: crashes a job may cost")
    owner_stale_after_s: float | None = Field(
        None, gt=0, description="a job whose owner has not renewed its lease for this long is taken over; "
                                "empty: visibility - 2 x heartbeat (see lease_problems)")
    max_job_duration_s: int = Field(10800, gt=0, description="past this (from the job's first claim) the job "
                                                             "ends failed, with its email")
    dlq_sweep_interval_s: float = Field(300.0, ge=0, description="how often an idle worker turns dead-lettered "
                                                                 "jobs into failed ones (0: never)")
    shutdown_grace_s: float = Field(100.0, gt=0, le=120,
                                    description="SIGTERM -> message released and exit 0 within this")
    health_file: Path | None = Field(None, description="touched by the worker loop; the container health check reads it")

    # --- ECS task scale-in protection (processor/task_protection.py) -------------------
    task_protection_minutes: int = Field(120, ge=1, le=2880,
                                         description="ExpiresInMinutes of the scale-in protection held while a "
                                                     "job runs, renewed at half of it (ECS allows 1..2880)")
    ecs_agent_uri: str | None = Field(None, validation_alias=AliasChoices("ECS_AGENT_URI", "ecs_agent_uri"),
                                      description="ECS_AGENT_URI as the ECS agent sets it (no HEADSHOTS_ prefix); "
                                                  "unset: not on ECS, no scale-in protection")

    # --- model and pipeline ----------------------------------------------------------
    base_model: str = Field("stabilityai/stable-diffusion-xl-base-1.0",
                            description="Hugging Face id or local path of a diffusers SDXL pipeline")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    train_method: Literal["lora", "full"] = "lora"
    train_steps: int | None = Field(None, ge=1, description="override of the steps-per-photo rule")
    train_text_encoder: bool = False
    prior_loss_weight: float = Field(1.0, ge=0, description="beta: weight of the class-prior term")
    instance_loss_weight: float = Field(1.0, gt=0, description="alpha: weight of the reconstruction term")
    num_class_images: int = Field(100, ge=1, le=2000)
    # --- the training recipe (docs/recipe.md names the source of each default) ----------
    train_batch_size: int = Field(4, ge=1, le=64, description="instance images per training step: the "
                                                               "published recipes' 4")
    train_instance_samples_per_photo: int = Field(200, ge=1, le=10000,
                                                  description="the step rule: instance images seen per usable "
                                                              "photo, clamped to the two settings below")
    train_min_instance_samples: int = Field(2000, ge=1, le=100000, description="the published recipes' floor")
    train_max_instance_samples: int = Field(2000, ge=1, le=100000,
                                            description="the ceiling: diffusers' 2,000 (cog-sdxl's 4,000 does "
                                                        "not fit the 20-minute H100 budget: docs/recipe.md)")
    train_class_batch_size: int = Field(1, ge=1, le=64, description="class (prior) images per training step "
                                                                   "beside train_batch_size instance images")
    noise_offset: float = Field(0.0357, ge=0, le=1, description="offset noise scale (0: off)")
    snr_gamma: float = Field(5.0, ge=0, le=100, description="min-SNR loss weighting gamma (0: off)")
    text_encoder_lr: float = Field(5e-6, gt=0, le=1e-3,
                                   description="learning rate of the text encoders' own group (train_text_encoder)")
    mirror_photos: bool = Field(False, description="mirror every other augmented copy (off: faces are not symmetric)")
    class_cache_dir: Path = Field(Path(".cache/class-images"),
                                  description="local cache of class-prior images, keyed by model and prompt")
    resolution: int = Field(1024, ge=64, le=2048, multiple_of=8)
    num_images: int = Field(50, ge=1, le=200, description="headshots to deliver")
    inference_steps: int = Field(25, ge=1, le=200,
                                 description="sampling steps (25 with dpmpp_2m_karras ~ Euler's 30+: docs/performance.md)")
    sampler: Literal["dpmpp_2m_karras", "euler", "pipeline"] = Field(
        "dpmpp_2m_karras", description="generation sampler; 'pipeline' keeps the model's own scheduler")
    overlap_scoring: bool = Field(True, description="score batch k on a CPU thread while batch k+1 generates")
    compile_unet: bool = Field(False, description="torch.compile the UNet for generation; paid once per worker "
                                                  "process, not per job (bench/compile_unet.py)")
    guidance_scale: float = Field(5.0, ge=1.0, le=30.0)
    generation_batch_size: int = Field(8, ge=1, le=64,
                                       description="images per sampling batch; 8 at 1024 peaks at 9.3 GiB (H100 bench)")
    max_regenerations: int = Field(3, ge=0, le=20, description="K: extra attempts per prompt")
    selection_mode: Literal["enforce", "report"] = "enforce"
    selection_threshold: float | None = Field(None, gt=0, lt=2,
                                              description="identity cosine distance to the user's photo set; "
                                                          "empty: the recognizer's threshold")
    pool_size: int | None = Field(None, ge=1, le=400,
                                  description="passing images generated before the best num_images by identity are "
                                              "delivered; empty: 1.3 x num_images rounded up (65 for 50: "
                                              "docs/judge.md)")
    choice_prompts: int = Field(3, ge=0, le=10,
                                description="validation prompts rendered per training checkpoint (50/75/100%) and "
                                            "LoRA scale to choose the one closest to the held-out photos; 0: the "
                                            "last checkpoint at scale 1.0, unjudged (docs/judge.md)")
    choice_scales: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.8, 1.0), description="LoRA scales the checkpoint choice tries, comma separated (docs/judge.md)")
    detail_pass: bool = Field(True, description="face detail pass on each delivered image: the face re-rendered "
                                                "by img2img at the model resolution, kept only when identity "
                                                "improves (docs/judge.md)")
    detail_strength: float = Field(0.4, ge=0.1, le=0.7,
                                   description="img2img strength of the detail pass (ADetailer's default 0.4)")
    detail_crop_factor: float = Field(1.6, ge=1.1, le=3.0,
                                      description="the detail pass's crop side as a multiple of the face box")
    seed: int = Field(1234, ge=0, le=2**32 - 1)
    formats: Annotated[tuple[DeliveryFormat, ...], NoDecode] = Field(
        ("square",), description="delivery formats of a job whose manifest names none: square,portrait (or a "
                                 "JSON list); a manifest's \"formats\" wins for its job")

    # --- faces -----------------------------------------------------------------------
    face_detector: Literal["hog+cnn", "cnn", "hog"] = Field(
        "hog+cnn", description="dlib detector path: HOG, then the CNN where HOG finds no face (docs/faces.md)")
    face_recognizer: Literal["Dlib"] = Field("Dlib", description="dlib's ResNet recognizer")
    deepface_home: Path | None = Field(None, description="where the dlib weights are baked (.deepface/weights/); "
                                                         "empty: the face_recognition_models package's own")
    eval_clip_model: Path | None = Field(None, description="`headshots eval`: local CLIP folder for CLIP-T/CLIP-I")
    eval_dino_model: Path | None = Field(None, description="`headshots eval`: local DINO ViT folder")

    # --- email -----------------------------------------------------------------------
    email_backend: Literal["ses", "smtp"] = "ses"
    email_sender: str = Field("headshots@example.com", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    email_retry_window_s: float = Field(120.0, ge=0, le=900,
                                        description="how long the last email of a failing job is retried while it "
                                                    "certainly fails (provider down, throttled) before the job ends "
                                                    "email: failed with the email_missing alarm")
    link_ttl_s: int = Field(7 * 24 * 3600, ge=60, le=366 * 24 * 3600,
                            description="lifetime of the emailed links, counted from delivery; results/ are "
                                        "kept at least as long (Terraform: results retention days)")

    # --- the front door (frontdoor/) and its signed links ----------------------------
    frontdoor_url: str | None = Field(None, description="public base URL of the front door (its function URL); "
                                                        "the ready email links there")
    link_secret_id: str | None = Field(None, description="Secrets Manager secret (name or ARN) holding the "
                                                         "HMAC key that signs the emailed links")
    frontdoor_upload_ttl_s: int = Field(900, ge=60, le=3600,
                                        description="expiry of the upload page's presigned POST policies")
    frontdoor_redirect_ttl_s: int = Field(300, ge=10, le=3600,
                                          description="lifetime of the presigned GET each link click redirects to")
    frontdoor_ratelimit_table: str | None = Field(None, description="DynamoDB table of the rate-limit counters "
                                                                    "(empty: the front door creates and starts "
                                                                    "nothing, it fails closed)")
    frontdoor_jobs_per_client_per_hour: int = Field(10, ge=1, le=10000,
                                                    description="jobs one client (IPv4 address or IPv6 /64; a /48 "
                                                                "gets 4x) may start an hour")
    frontdoor_jobs_per_address_per_day: int = Field(5, ge=1, le=10000,
                                                    description="jobs one email address may start a day")
    frontdoor_jobs_per_hour: int = Field(100, ge=1, le=100000,
                                         description="jobs everyone together may start an hour (the GPU budget's "
                                                     "cap; hitting it raises an alarm)")
    frontdoor_proof_emails_per_address_per_hour: int = Field(3, ge=1, le=1000,
                                                             description="code emails one address may be sent an hour")
    frontdoor_proof_emails_per_address_per_day: int = Field(6, ge=1, le=1000,
                                                            description="code emails one address may be sent a day")
    frontdoor_proof_emails_per_client_per_hour: int = Field(10, ge=1, le=10000,
                                                            description="code emails one client (IPv4 or IPv6 /64; "
                                                                        "a /48 gets 4x) may ask for an hour")
    frontdoor_proof_emails_per_hour: int = Field(500, ge=1, le=100000,
                                                 description="code emails the front door sends an hour in all (SES "
                                                             "reputation's cap; hitting it raises an alarm)")
    frontdoor_proof_ttl_s: int = Field(1800, ge=60, le=86400,
                                       description="how long the emailed code proves the address for its job")
    frontdoor_trusted_proxy: Literal["none", "cloudfront"] = Field(
        "none", description="who stands in front of the function URL: 'cloudfront' (its viewer-address header "
                            "is trusted; Terraform then lets only that distribution invoke the function), or "
                            "'none' (the connection's own address; any forwarding header is ignored)")

    # --- uploads ---------------------------------------------------------------------
    missing_photo_grace_s: float = Field(60.0, ge=0, le=900,
                                         description="how long photos the manifest lists but that are not "
                                                     "uploaded yet are waited for before they count as missing")

    # --- local working space and logs ------------------------------------------------
    work_dir: Path = Field(Path(".cache/work"), description="local scratch space for a job")
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    failpoints: str = Field("", description="fault-suite only: 'point=kill|raise|exit[@N],...' "
                                            "(processor/failpoints.py); empty in production")

    @field_validator("choice_scales", mode="before")
    @classmethod
    def _scales_from_text(cls, v: Any) -> Any:
        """The environment's text: numbers separated by commas (or a JSON list)."""
        if isinstance(v, str):
            return json.loads(v) if v.lstrip().startswith("[") else [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("choice_scales")
    @classmethod
    def _scales_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0.0 < x <= 1.5 for x in v) or len(set(v)) != len(v):
            raise ValueError("one or more distinct LoRA scales in (0, 1.5]")
        return tuple(v)

    @field_validator("formats", mode="before")
    @classmethod
    def _formats_from_text(cls, v: Any) -> Any:
        """The environment's text: a JSON list, or names separated by commas."""
        if isinstance(v, str):
            return json.loads(v) if v.lstrip().startswith("[") else [n.strip() for n in v.split(",") if n.strip()]
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return checked_formats(v)

    @field_validator("link_secret_id", "frontdoor_ratelimit_table")
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("frontdoor_url")
    @classmethod
    def _frontdoor_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("http://", "https://")) or "?" in v or "#" in v:
            raise ValueError("must be an http(s) base URL without query or fragment")
        return v.rstrip("/")

    @field_validator("aws_endpoint_url", "ecs_agent_uri")
    @classmethod
    def _optional_base_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("http://", "https://")):
            hint = " (it is set by the ECS agent)" if info.field_name == "ecs_agent_uri" else ""
            raise ValueError(f"must start with http:// or https://{hint}")
        return v.rstrip("/")

    @field_validator("queue_url", "dlq_url")
    @classmethod
    def _queue_is_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an SQS queue URL (http:// or https://)")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Settings":
        if self.input_bucket == self.output_bucket:
            raise ValueError("input_bucket and output_bucket must differ")
        if self.train_min_instance_samples > self.train_max_instance_samples:
            raise ValueError("train_min_instance_samples must not exceed train_max_instance_samples")
        problems = lease_problems(self.visibility_timeout_s, self.heartbeat_interval_s,
                                  self.owner_stale_after_s, self.max_job_duration_s)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def stale_after_s(self) -> float:
        """The lease's staleness: the setting, or the rule's default."""
        if self.owner_stale_after_s is not None:
            return self.owner_stale_after_s
        return default_stale_after(self.visibility_timeout_s, self.heartbeat_interval_s)


# --- the lease rule (mirrored by terraform/: keep both in step) ---------------------------
def default_stale_after(visibility_s: float, heartbeat_s: float) -> float:
    """Visibility minus two heartbeats.

    Why: a worker that dies renews neither its message's visibility nor its job's lease; its
    message reappears about ``visibility - heartbeat`` after its last renewal at the earliest.
    A lease that is stale by then lets the next receiver take the job over at once, with one
    heartbeat of margin for clocks and slow requests.
    """
    return visibility_s - 2 * heartbeat_s


def owner_validity(stale_s: float, heartbeat_s: float) -> float:
    """How long after its last renewal an owner may still write: the staleness less a margin.

    A rival takes the job over only after ``stale_s`` of silence (by the wall clock written in
    status.json); the owner stops writing a sixth of a heartbeat before that (5 s at the
    production defaults), by its own monotonic clock, which covers clock skew and a write
    already on the wire. The lease is renewed every half heartbeat, so a healthy owner keeps
    well over a heartbeat of slack.
    """
    return stale_s - heartbeat_s / 6


def lease_problems(visibility_s: float, heartbeat_s: float, stale_s: float | None,
                   max_job_s: float) -> list[str]:
    """What is inconsistent in a visibility / heartbeat / staleness / job-duration set (empty: fine).

    - visibility >= 3 x heartbeat: the message stays hidden through one failed renewal;
    - staleness >= 2 x heartbeat: a live owner may miss one renewal without losing its job;
    - the maximum job duration outlasts a visibility timeout.
    A staleness above the default is allowed: a dead owner's message is then put back with a
    delay until the lease is stale, which is slower, never lost.
    """
    problems = []
    if visibility_s < 3 * heartbeat_s:
        problems.append(f"visibility_timeout_s ({visibility_s:g}) must be at least 3 x heartbeat_interval_s "
                        f"({heartbeat_s:g})")
    stale = default_stale_after(visibility_s, heartbeat_s) if stale_s is None else stale_s
    if stale < 2 * heartbeat_s:
        problems.append(f"owner_stale_after_s ({stale:g}) must be at least 2 x heartbeat_interval_s "
                        f"({heartbeat_s:g})" + (" (it defaults to visibility - 2 x heartbeat)"
                                                 if stale_s is None else ""))
    if max_job_s <= visibility_s:
        problems.append(f"max_job_duration_s ({max_job_s:g}) must exceed visibility_timeout_s ({visibility_s:g})")
    return problems


def worker_problems(settings: Settings) -> list[str]:
    """What a worker cannot end a job without, that settings alone can tell (empty: fine).

    Why checked at start-up: without the front door's URL or the link key no ready email can be
    written, and a worker that found out at notify would have spent each job's GPU time first."""
    problems = []
    if not settings.queue_url:
        problems.append("HEADSHOTS_QUEUE_URL is not set: there is no queue to serve")
    if not settings.frontdoor_url:
        problems.append("HEADSHOTS_FRONTDOOR_URL is not set: the ready email has nowhere to link to")
    if not settings.link_secret_id:
        problems.append("HEADSHOTS_LINK_SECRET_ID is not set: the ready email's links cannot be signed")
    return problems


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) or raise one readable SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = "_".join(str(p) for p in err["loc"])
            name = (_UNPREFIXED_ENV.get(field.lower()) or "HEADSHOTS_" + field.upper()) if field else "settings"
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
