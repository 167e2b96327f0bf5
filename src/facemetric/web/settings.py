"""Settings of the web app, read from flags or ``FACEMETRIC_*`` environment variables.

Every field carries a description; ``docs/web.md`` lists them all and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
# One rule each for the settings that share it (the rest only look alike: own bounds, own text).
SimilarityThreshold = Annotated[float | None, Field(ge=-1.0, le=1.0)]  # a cosine; None: derived
DetectSide = Annotated[int, Field(ge=64, le=4096)]  # a frame's longest side for face detection


class WebSettings(BaseSettings):
    """Everything ``facemetric serve`` can be told; environment variables: FACEMETRIC_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="FACEMETRIC_", extra="ignore")

    model: str | None = Field(
        default=None,
        description="Checkpoint, run folder, pretrained name (dlib) or 'best' (default: the "
        "promoted model $FACEMETRIC_HOME/best.pt, else the pretrained dlib model). The server "
        "starts without one and says so.",
    )
    db: str | None = Field(
        default=None,
        description="Gallery: a SQLite file, or postgresql://USER:PASSWORD@HOST:PORT/DBNAME for "
        "one gallery several servers share (default: $FACEMETRIC_HOME/gallery.db).",
    )
    host: str = Field(
        default="127.0.0.1", description="Interface to listen on; local only by default."
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required to change the gallery (enrol, remove). When unset, "
        "a random one is generated and printed at start-up.",
    )
    max_upload_bytes: int = Field(
        default=16 * MIB,
        gt=0,
        description="Largest HTTP request body (all photos).",
    )
    max_frame_bytes: int = Field(
        default=2 * MIB, gt=0, description="Largest WebSocket frame (one JPEG) accepted."
    )
    max_photos: int = Field(
        default=20, gt=0, description="Most photos accepted in one enrolment or preview request."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API and open the stream (/ws/stream) from "
        "other sites (JSON list); empty = CORS closed and only this server's own pages may open "
        "the stream.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (the Host header) answered besides the bound host, localhost, "
        "127.0.0.1 and ::1 (JSON list; flag: comma-separated); others get 400, which stops DNS "
        "rebinding. '*' answers any name. Needed when serving on 0.0.0.0 under a name.",
    )
    decode_pixels: int = Field(
        default=4_000_000,
        ge=10_000,
        description="Photos and frames with more pixels are decoded reduced to this many (JPEGs "
        "at 1/2 to 1/8 scale while decoding, others right after): faces need no more. Boxes "
        "and sizes in answers stay in the photo's own pixels.",
    )
    max_decode_pixels: int = Field(
        default=16_000_000,
        ge=10_000,
        description="Largest image decoded at all: a PNG, WebP, ... of more pixels is refused "
        "with 413 from its header (JPEGs count at the 1/2 to 1/8 scale they are decoded at, so "
        "with the defaults every JPEG is taken). Bounds the memory of one decode (about 4 bytes "
        "a pixel). Camera frames over it are skipped and counted (frames_oversized in "
        "/api/cameras).",
    )
    decode_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Photos and frames decoded at once over all requests and streams; others "
        "wait their turn. With max_decode_pixels this bounds the memory uploads can take.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="Largest HTTP request head (request line and headers); larger ones get 400.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's head once connected (or after "
        "the previous answer); slower connections are closed.",
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a client has to send a request's body; slower uploads get 408.",
    )
    keep_alive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive HTTP connection is kept open."
    )
    max_connections: int = Field(
        default=100,
        ge=1,
        description="Most connections served at once, streams and HTTP requests counted "
        "together: a stream over it is closed at once with code 1013 and a reason, a request "
        "gets 503; /api/health is always answered.",
    )
    max_idle_connections: int = Field(
        default=100,
        ge=1,
        description="Most connections kept open waiting for a request head (new or idle "
        "keep-alive ones, not counted in max_connections); one more closes the one waiting "
        "longest, so slow heads cannot hold sockets.",
    )
    min_body_rate: float = Field(
        default=1024.0,
        ge=0,
        description="Bytes a second below which an upload (after its first 2 s) gives up its "
        "slot with 408 when all max_connections are taken and another client needs one.",
    )
    stream_idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a stream may stay open without a frame before the server closes "
        "it (code 1001; the live page reconnects).",
    )
    engine: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="Inference engine: auto (ONNX if exported), torch, onnx.",
    )
    detector: str = Field(default="retinaface", description="Face detector, by registered name.")
    stream_detect_size: DetectSide = Field(
        default=320,
        description="Live stream: longest side a frame is scaled to for face detection (webcam "
        "faces are large; 320 is 2.6x faster than 640 with RetinaFace). Crops are cut from the "
        "full frame; uploaded photos are detected at the detector's own size (640).",
    )
    threshold: SimilarityThreshold = Field(
        default=None,
        description="Match threshold on cosine similarity; default: the model's calibrated one.",
    )
    top_k: int = Field(default=3, ge=1, le=20, description="Gallery candidates returned per face.")
    enrol_quality: Literal["refuse", "flag", "off"] = Field(
        default="refuse",
        description="Enrolment photos below the quality floors: refuse them (with the reason), "
        "flag them (saved, with the reason) or off (no checks). See docs/quality.md.",
    )
    quality_floors: dict[str, float] = Field(
        default_factory=dict,
        description="Quality floors that differ from the defaults (JSON object), of "
        "min_eye_px, min_sharpness, max_yaw, min_score, min_consistency; 0 turns one off.",
    )
    fpir: float = Field(
        default=0.01,
        gt=0.0,
        lt=1.0,
        description="Stranger faces named per search that the open-set decision's threshold is "
        "calibrated for, at the gallery's size (docs/openset.md).",
    )
    margin: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="How far the best person's score must lead the next person's to be named.",
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads decoding and recognising (event loop stays free); health and "
        "gallery reads have threads of their own.",
    )
    track_iou: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="Tracking: least box overlap (IoU) for a face that still looks the same to "
        "continue its decided track without being embedded again.",
    )
    track_min_frames: int = Field(
        default=2,
        ge=1,
        description="Tracking: embedded frames of a track before the decision's name is shown "
        "(steadying delays a name, never keeps one).",
    )
    track_reembed_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Tracking: a track decided with margin is embedded again at least this "
        "often (seconds; 0: every face of every frame).",
    )
    track_max_missed: int = Field(
        default=5, ge=0, description="Tracking: frames a track keeps its box without its face."
    )
    cameras: list[str] = Field(
        default_factory=list,
        description="Server-side cameras as NAME=SOURCE (JSON list; flag: --camera, repeatable): "
        "rtsp://..., http(s)://... MJPEG, a video file (played in a loop at its own pace) or "
        "/dev/videoN. Passwords in URLs are never shown.",
    )
    cameras_file: str | None = Field(
        default=None,
        description="A TOML file of cameras ([[camera]] tables: name, source, optional fps), "
        "added to cameras.",
    )
    camera_fps: float = Field(
        default=5.0,
        gt=0.0,
        le=120.0,
        description="Frames a second each camera hands to the recogniser at most (its frame "
        "budget; a camera in the TOML file may set its own). Other frames are dropped unread.",
    )
    camera_detect_size: DetectSide = Field(
        default=640,
        description="Cameras: longest side a frame is scaled to for face detection (faces on "
        "a door camera are smaller than a webcam's).",
    )
    camera_motion: bool = Field(
        default=True,
        description="Cameras: recognise a frame only when something moved since the last one "
        "recognised (a 64-pixel grey image compared; a still camera then costs ~3% of a core).",
    )
    camera_motion_refresh: float = Field(
        default=1.0,
        gt=0.0,
        description="Cameras: seconds after which a still scene is recognised again anyway "
        "(keep it under event_gap so events of people standing still stay open).",
    )
    event_gap: float = Field(
        default=2.0,
        gt=0.0,
        description="Seconds a face may go unseen before its event closes (a missed frame "
        "never splits an event).",
    )
    keep_unknown: bool = Field(
        default=False,
        description="Keep the faces that match nobody (chip, time, embedding) in the gallery, "
        "grouped into suggested people for the Unknown faces page (/unknown).",
    )
    unknown_days: float = Field(
        default=30.0, gt=0, description="Unknown faces older than this many days are deleted."
    )
    unknown_max_faces: int = Field(
        default=10_000, ge=1, description="Most unknown faces kept; the oldest go first."
    )
    unknown_interval: float = Field(
        default=10.0,
        ge=0,
        description="Seconds before another face of the same unknown group from the same "
        "source is kept (a stream shows a stranger in every frame).",
    )
    unknown_threshold: SimilarityThreshold = Field(
        default=None,
        description="Grouping threshold of unknown faces (average cosine similarity within a "
        "group); default: the match threshold + 0.01.",
    )

    # ---- events: history, retention, notifications, access (docs/events.md) ----
    viewer_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (or the page's cookie, asked for once) needed to read events, "
        "their snapshots and live camera pictures whenever the server listens beyond 127.0.0.1 "
        "(the admin token works too). When unset and needed, a random one is generated and "
        "printed at start-up.",
    )
    viewer_token_required: Literal["auto", "always"] = Field(
        default="auto",
        description="auto: the viewer token is needed only when the server listens beyond "
        "127.0.0.1 / localhost; always: also on localhost (behind a reverse proxy).",
    )
    events_keep_days: float = Field(
        default=30.0,
        ge=0,
        description="Events (and their images) last seen more than this many days ago are "
        "deleted; 0 = no age limit.",
    )
    events_max_mb: float = Field(
        default=1024.0,
        ge=0,
        description="The oldest events are deleted while all events take more than this many MB "
        "(images plus 200 bytes a row); 0 = no size limit.",
    )
    mqtt: SecretStr | None = Field(
        default=None,
        description="MQTT broker for events: mqtt://[USER:PASSWORD@]HOST[:PORT] (mqtts:// for "
        "TLS); never shown with its password.",
    )
    mqtt_prefix: str = Field(default="facemetric", description="MQTT topic prefix.")
    mqtt_discovery_prefix: str = Field(
        default="homeassistant",
        description="Home Assistant MQTT discovery prefix (each person becomes a sensor); empty "
        "= no discovery messages.",
    )
    webhook: list[SecretStr] = Field(
        default_factory=list,
        description="URLs each event is POSTed to as JSON (JSON list; flag: repeatable); shown "
        "without their path, which often holds a secret.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Key of the X-Facemetric-Signature header (sha256 HMAC of the body) on "
        "webhook requests.",
    )

    @field_validator("quality_floors")
    @classmethod
    def _known_floors(cls, value: dict[str, float]) -> dict[str, float]:
        from facemetric.data.quality import QualityFloors
        from facemetric.errors import ConfigError

        unknown = set(value) - set(QualityFloors().to_dict())
        if unknown:
            raise ValueError(f"quality_floors: unknown floor(s) {', '.join(sorted(unknown))}")
        try:
            QualityFloors(**value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("mqtt")
    @classmethod
    def _mqtt_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            from facemetric.errors import ConfigError
            from facemetric.events.mqtt import parse_mqtt_url

            try:
                parse_mqtt_url(value.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("--mqtt ")) from None
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        from facemetric.events.notify import display_target

        for url in value:
            if not url.get_secret_value().lower().startswith(("http://", "https://")):
                shown = display_target(url.get_secret_value())
                raise ValueError(f"{shown}: must be an http:// or https:// URL")
        return value

    @field_validator("detector")
    @classmethod
    def _detector_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("detector: must name a registered detector")
        return value.strip()
