"""The one job config of a restore run: built from a dict or YAML, validated once.

Keys are the long flags of `spl restore` with underscores (`--mask-template` is
`mask_template`), plus a few job options that have no flag yet (see `docs/PIPELINE.md`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spl_model.names import CLASSICAL_ENGINES, ENGINES, PRECISIONS, STRATEGIES

FORMATS = ("auto", "pairs", "webdataset", "parquet")
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_FORMATS = ("same", "png", "jpg", "webp", "tiff")
OUTPUT_LAYOUTS = ("auto", "files", "webdataset", "parquet")  # auto: the input's own layout
MASK_ORIENTATIONS = ("display", "stored")  # masks drawn on the upright image, or on its pixels
MARK_COLORS = {"white": (255, 255, 255), "black": (0, 0, 0)}  # a light mark's colour (RGB)
ANCHORS = (
    "fill",
    "center",
    "top-left",
    "top",
    "top-right",
    "left",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PILLOW_DEFAULT_MAX_PIXELS = 89_478_485
SECRET_WORDS = ("secret", "password", "token", "credential", "passphrase", "private")
SECRET_KEYS = {"key", "access_key", "aws_access_key_id", "account_key", "sas_token"}


class ConfigError(ValueError):
    """A job config that cannot run; the message names the field and the allowed values."""


class SpecLoader(yaml.SafeLoader):
    """YAML 1.1 safe loader without base-60 numbers, so `actors: 2:6` stays the string "2:6"
    (plain PyYAML reads it as 126)."""


SpecLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$"
        r"|^\.(nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def load_spec(text: str) -> Any:
    """Parse a YAML job spec (or a YAML flag value) with `SpecLoader`."""
    return yaml.load(text, Loader=SpecLoader)


def knob(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A `RestoreConfig` field with what its flag shows (`spl restore --help`, jobs/spec.py):
    `help`, `metavar`, and the allowed values when they are a fixed set."""
    metadata = {"help": help, "metavar": metavar, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RestoreConfig:
    """Everything a restore run needs. Build with `from_dict` / `from_yaml`, never half-filled."""

    images: str = knob(
        help="Where the images are: a prefix, a tar/Parquet shard or folder (any fsspec URL).",
        metavar="URI",
    )
    output: str = knob(
        help="Where restored images, stats and run summaries go (any fsspec URL).",
        metavar="URI",
    )
    masks: str | None = knob(
        None,
        help="Prefix of the masks, matched to images by relative key (photo.jpg <-> photo.png).",
        metavar="URI",
    )
    manifest: str | None = knob(
        None,
        help=(
            "An inventory of the inputs instead of a listing: S3 Inventory manifest.json, its CSV "
            "or Parquet files, or any Parquet with a key column."
        ),
        metavar="URI",
    )
    mask_template: str | None = knob(
        None,
        help="One mask for every image (e.g. a fixed-position watermark); `auto` finds it.",
        metavar="FILE|auto",
    )
    mask_anchor: str = knob(
        "fill",
        help="Where the mask template sits on each image.",
        choices=ANCHORS,
    )
    mask_offset: tuple[str, str] = knob(
        ("0", "0"),
        help="Template offset from its anchor: pixels or percent, e.g. 12,12 or 2%,2%.",
        metavar="X,Y",
    )
    mask_scale: float | None = knob(
        None,
        help="Template width as a fraction of the image width, in (0, 1].",
        metavar="F",
    )
    mask_search: int = knob(
        0,
        help="Find the template within PX of its place in each image (watermarks that move).",
        metavar="PX",
    )
    mask_min_score: float = knob(
        0.3,
        help="Below this match score an image is skipped, never filled.",
        metavar="S",
    )
    mask_orientation: str = knob(
        "display",
        help=(
            "Masks are drawn on the image as displayed (EXIF orientation applied) or on its stored "
            "pixels."
        ),
        choices=MASK_ORIENTATIONS,
    )
    mask_alpha: str | None = knob(
        None,
        help=(
            "The template's opacity map (alpha.png of `spl watermark detect`): where the mark is "
            "light, the photo under it is recovered (de-blended) instead of inpainted."
        ),
        metavar="FILE",
    )
    mark_color: str = knob(
        "white",
        help="The semi-transparent mark's colour, for de-blending.",
        choices=tuple(MARK_COLORS),
    )
    format: str = knob(
        "auto",
        help="Input layout; auto detects pairs, WebDataset tars or Parquet shards.",
        choices=FORMATS,
    )
    checkpoint: str | None = knob(
        None,
        help="SPL weights (official .pth or the project's .safetensors).",
        metavar="URI",
    )
    engine: str | None = knob(
        None,
        help="Inpainting engine; default: spl (or the checkpoint's engine).",
        choices=ENGINES,
    )
    strategy: str = knob(
        "crop",
        help="Full-resolution strategy: crop around holes, or resize the whole image.",
        choices=STRATEGIES,
    )
    dilate: int = knob(0, help="Grow every mask by this many pixels (hides halos).", metavar="PX")
    device: str = knob("auto", help="Where the model runs.", choices=DEVICES)
    precision: str = knob(
        "auto",
        help="Inference precision; auto: bf16 on CUDA, fp32 on CPU.",
        choices=PRECISIONS,
    )
    batch_size: int = knob(
        8,
        help="Items per I/O block (read, decode, encode, write).",
        metavar="N",
    )
    model_batch: int | None = knob(
        None,
        help="Windows per model call, filled from many items; default: 64 on CUDA, 1 on CPU.",
        metavar="N",
    )
    compile: bool | None = knob(
        None,
        help=(
            "torch.compile the model in each actor, warmed up on its fixed batch shapes before it "
            "takes work; auto: on CUDA only (on a CPU each shape takes about a minute to compile)."
        ),
    )
    actors: str | None = knob(
        None,
        help="Inference actors: a fixed N or an autoscaling MIN:MAX.",
        metavar="MIN[:MAX]",
    )
    gpus_per_actor: float | None = knob(
        None,
        help="GPUs each inference actor reserves (fractions share a GPU).",
        metavar="F",
    )
    cpus_per_actor: float | None = knob(
        None,
        help="CPUs each inference actor reserves [default: 1 on GPU; 0.5 on CPU, where each "
        "actor computes on one core and the stage tasks run beside it].",
        metavar="F",
    )
    threads_per_actor: int | None = knob(
        None,
        help="Torch threads per inference actor [default: on CPU, the cluster's CPUs shared "
        "among the actors (one each by default); on GPU, one per reserved CPU].",
        metavar="N",
    )
    retry_failed: bool = knob(False, help="Re-run only the items whose last row is an error.")
    overwrite: bool = knob(False, help="Redo every item, even those already restored.")
    storage_options: dict[str, Any] = field(default_factory=dict)
    output_format: str = knob(
        "same",
        help="Format of restored images; same keeps the input's.",
        choices=OUTPUT_FORMATS,
    )
    output_quality: int = knob(
        95,
        help="JPEG/WebP quality of restored images (1-100).",
        metavar="Q",
    )
    output_layout: str = knob(
        "auto",
        help="Loose files under OUT/images, or shards under OUT/shards; auto: the input's own.",
        choices=OUTPUT_LAYOUTS,
    )
    shard_size: int = knob(
        1000,
        help="Items per output shard when the input is loose files.",
        metavar="N",
    )
    max_image_pixels: int | None = knob(
        PILLOW_DEFAULT_MAX_PIXELS,
        help="Refuse images larger than this many pixels.",
        metavar="N",
    )
    run_id: str | None = knob(
        None,
        help="Name of this run (OUT/runs/<run_id>.json); default: time-based.",
        metavar="ID",
    )
    ray_address: str | None = knob(
        None,
        help="Ray cluster to join (GCS address or auto); default: a local Ray.",
        metavar="ADDRESS",
    )
    num_cpus: int | None = knob(None, help="CPUs for a Ray started here.", metavar="N")
    io_retries: int = knob(5, help="Retries for transient storage errors.", metavar="N")
    io_timeout_s: float = knob(60.0, help="Storage connect/read timeout in seconds.", metavar="S")
    gpu_wait_s: float = knob(
        900.0,
        help="Seconds a GPU job waits for the autoscaler's GPUs before failing.",
        metavar="S",
    )
    lease_ttl_s: float = knob(
        120.0,
        help="A run's lease on OUT expires this long after its last renewal.",
        metavar="S",
    )
    stats_flush_rows: int = knob(
        1000,
        help="Write a stats file at least every N rows.",
        metavar="N",
    )
    stats_flush_s: float = knob(
        30.0,
        help="Write a stats file at least every S seconds.",
        metavar="S",
    )
    progress_s: float = knob(
        10.0,
        help="Seconds between progress lines (when stderr is not a terminal).",
        metavar="S",
    )
    progress_bars: bool = knob(
        True,
        help="Show progress on stderr: a bar on a terminal, else a line every progress_s seconds.",
    )
    drain_s: float = knob(
        30.0,
        help=(
            "After a first Ctrl-C or SIGTERM, seconds to go on recording the items in flight before"
            " stopping (a second Ctrl-C stops at once)."
        ),
        metavar="S",
    )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestoreConfig:
        """Build and validate; unknown keys and bad values raise `ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a job spec must be a mapping of keys to values, got {type(data)}")
        names = {f.name for f in dataclasses.fields(cls)}
        normalized = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(normalized) - names)
        if unknown:
            raise ConfigError(
                f"unknown job key(s) {unknown}; allowed keys: {', '.join(sorted(names))}"
            )
        for required in ("images", "output"):
            if not normalized.get(required):
                raise ConfigError(f"`{required}` is required (a local path or fsspec URL)")
        config = cls(**normalized)
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RestoreConfig:
        """Load a YAML job spec; `overrides` (e.g. CLI flags) win over the file."""
        data = read_spec_file(path)
        data.update({k.replace("-", "_"): v for k, v in (overrides or {}).items()})
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field once; coerce YAML-ish values (\"8\", \"1:4\") to their types."""
        _choice("format", self.format, FORMATS)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("mask_anchor", self.mask_anchor, ANCHORS)
        _choice("mask_orientation", self.mask_orientation, MASK_ORIENTATIONS)
        if self.output_format == "jpeg":
            self.output_format = "jpg"
        _choice("output_format", self.output_format, OUTPUT_FORMATS)
        _choice("output_layout", self.output_layout, OUTPUT_LAYOUTS)
        if self.engine is not None:
            _choice("engine", self.engine, ENGINES)
        if self.engine in CLASSICAL_ENGINES and self.checkpoint:
            raise ConfigError(
                f"`checkpoint` is set but `engine` is {self.engine!r}, which uses no weights; "
                "drop one of them (engine `spl` uses the checkpoint)"
            )
        for name in ("images", "output"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"`{name}` must be a path or URL string, got {value!r}")
        self.output = _normal_output(self.output)
        if self.masks and self.mask_template:
            raise ConfigError(
                "give either `masks` (a prefix) or `mask_template` (one file), not both"
            )
        if self.format == "pairs" and not (self.masks or self.mask_template):
            raise ConfigError(
                "format `pairs` needs `masks` (a prefix) or `mask_template` (one file)"
            )
        if self.masks and self.format in ("webdataset", "parquet"):
            raise ConfigError(
                f"`masks` is only for format `pairs`; {self.format} inputs carry their masks "
                "(or use `mask_template`)"
            )
        self.dilate = _int("dilate", self.dilate, low=0)
        self.batch_size = _int("batch_size", self.batch_size, low=1)
        if self.model_batch is not None:
            self.model_batch = _int("model_batch", self.model_batch, low=1)
        self.compile = _tristate("compile", self.compile)
        self.output_quality = _int("output_quality", self.output_quality, low=1, high=100)
        self.io_retries = _int("io_retries", self.io_retries, low=0)
        self.shard_size = _int("shard_size", self.shard_size, low=1)
        self.stats_flush_rows = _int("stats_flush_rows", self.stats_flush_rows, low=1)
        if self.max_image_pixels is not None:
            self.max_image_pixels = _int("max_image_pixels", self.max_image_pixels, low=1)
        if self.num_cpus is not None:
            self.num_cpus = _int("num_cpus", self.num_cpus, low=1)
        if self.threads_per_actor is not None:
            self.threads_per_actor = _int("threads_per_actor", self.threads_per_actor, low=1)
        if self.cpus_per_actor is not None:
            self.cpus_per_actor = _float("cpus_per_actor", self.cpus_per_actor, low=0.0)
        self.io_timeout_s = _float("io_timeout_s", self.io_timeout_s, low=0.1)
        self.gpu_wait_s = _float("gpu_wait_s", self.gpu_wait_s, low=0.0)
        self.lease_ttl_s = _float("lease_ttl_s", self.lease_ttl_s, low=1.0)
        self.stats_flush_s = _float("stats_flush_s", self.stats_flush_s, low=0.0)
        self.progress_s = _float("progress_s", self.progress_s, low=0.1)
        self.drain_s = _float("drain_s", self.drain_s, low=0.0)
        if self.gpus_per_actor is not None:
            self.gpus_per_actor = _float("gpus_per_actor", self.gpus_per_actor, low=0.0)
            if self.gpus_per_actor > 0 and self.device == "cpu":
                raise ConfigError("`gpus_per_actor` > 0 needs `device` auto or cuda, not cpu")
        self.mask_search = _int("mask_search", self.mask_search, low=0)
        self.mask_min_score = _float("mask_min_score", self.mask_min_score, low=0.0)
        if self.mask_search and not self.mask_template and not self.masks:
            raise ConfigError("`mask_search` needs a `mask_template`")
        if self.mask_alpha and not self.mask_template:
            raise ConfigError("`mask_alpha` needs the `mask_template` it is the opacity map of")
        _choice("mark_color", self.mark_color, tuple(MARK_COLORS))
        if self.mask_scale is not None:
            self.mask_scale = _float("mask_scale", self.mask_scale, low=1e-6)
            if self.mask_scale > 1:
                raise ConfigError(
                    f"`mask_scale` is the template width as a fraction of the image width, "
                    f"in (0, 1]; got {self.mask_scale}"
                )
        self.mask_offset = _offset(self.mask_offset)
        if self.actors is not None:
            self.actors = str(self.actors)
            self.actor_range()  # raises on a bad value
        for name in ("retry_failed", "overwrite", "progress_bars"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"`{name}` must be true or false, got {getattr(self, name)!r}")
        if self.retry_failed and self.overwrite:
            raise ConfigError(
                "`retry_failed` and `overwrite` exclude each other: overwrite redoes all"
            )
        if self.storage_options is None:
            self.storage_options = {}
        if not isinstance(self.storage_options, dict):
            raise ConfigError("`storage_options` must be a mapping (e.g. {endpoint_url: ...})")
        if self.run_id is not None and not RUN_ID_RE.match(str(self.run_id)):
            raise ConfigError(
                f"`run_id` {self.run_id!r} must be 1-128 characters of letters, digits, . _ - "
                "(it names files under OUT/runs/)"
            )

    def actor_range(self) -> tuple[int, int] | None:
        """`actors` as (min, max); None means: size the pool from the cluster's resources."""
        if self.actors is None:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", self.actors)
        if not match:
            raise ConfigError(
                f"`actors` must be MIN or MIN:MAX (e.g. 4 or 2:8), got {self.actors!r}"
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if low < 1 or high < low:
            raise ConfigError(f"`actors` needs 1 <= MIN <= MAX, got {self.actors!r}")
        return low, high

    # ---- derived values -----------------------------------------------------------------
    def layout_for(self, input_layout: str) -> str:
        """The output layout: `output_layout`, or for `auto` the input's own (pairs: files)."""
        if self.output_layout != "auto":
            return self.output_layout
        return "files" if input_layout == "pairs" else input_layout

    def settings_id(
        self,
        model_id: str,
        engine: str,
        template_url: str | None = None,
        output_layout: str = "files",
    ) -> str:
        """Fingerprint of everything that changes an output image; the ledger keys on it.

        Batch size, actors and device are left out on purpose: they change speed, not results.
        `template_url`: the template the listing found (`masks` naming one file is a template
        too), so its placement counts however it arrived. A shard `output_layout` counts (its
        items live in shards, not files); `files` adds nothing, so older fingerprints hold.
        """
        templated = bool(self.mask_template or template_url)
        settings = {
            "model_id": model_id,
            "engine": engine,
            "strategy": self.strategy,
            "dilate": self.dilate,
            "precision": self.precision,
            "masks": self.masks,
            "mask_template": self.mask_template,
            "mask_anchor": self.mask_anchor if templated else None,
            "mask_offset": list(self.mask_offset) if templated else None,
            "mask_scale": self.mask_scale if templated else None,
            **(
                {"mask_search": self.mask_search, "mask_min_score": self.mask_min_score}
                if self.mask_search
                else {}
            ),
            **(
                {"mask_alpha": self.mask_alpha, "mark_color": self.mark_color}
                if self.mask_alpha
                else {}
            ),
            "output_format": self.output_format,
            "output_quality": self.output_quality,
            **({"output_layout": output_layout} if output_layout != "files" else {}),
            **(
                {"mask_orientation": self.mask_orientation}
                if self.mask_orientation != "display"
                else {}
            ),
        }
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def io_options(self) -> dict[str, Any]:
        """`storage_options` plus `io_timeout_s`, as `storage.filesystem` takes them (the user's
        options are left as given)."""
        from .storage import IO_TIMEOUT_KEY

        return {**self.storage_options, IO_TIMEOUT_KEY: self.io_timeout_s}

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with credentials replaced by `***` (safe to write to OUT)."""
        data = self.to_dict()
        data["storage_options"] = redact(data.get("storage_options") or {})
        urls = ("images", "masks", "mask_template", "mask_alpha", "output", "checkpoint")
        for name in (*urls, "ray_address"):
            if isinstance(data.get(name), str):
                data[name] = redact_url(data[name])
        data["mask_offset"] = list(self.mask_offset)
        return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """A YAML job spec as a dict with normalized keys (`mask-template` -> `mask_template`)."""
    try:
        data = load_spec(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {path}: {yaml_error(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping of job keys, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def is_secret(key: str) -> bool:
    """A secret-looking key (secret, token, password, key...): its value is never shown."""
    lowered = key.lower()
    return lowered in SECRET_KEYS or any(word in lowered for word in SECRET_WORDS)


def redact(value: Any, key: str = "") -> Any:
    """Replace values under secret-looking keys with `***`."""
    if key and is_secret(key):
        return "***" if value not in (None, "") else value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def redact_url(url: str) -> str:
    """Hide `user:password@` in URLs."""
    return re.sub(r"(^[a-zA-Z][\w+.-]*://)[^/@\s]+@", r"\1***@", url)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"`{name}` must be one of {', '.join(allowed)}; got {value!r}")


def _tristate(name: str, value: Any) -> bool | None:
    """true / false, or None for `auto` (the default)."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ConfigError(f"`{name}` must be true, false or auto, got {value!r}")


def _int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be an integer, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"`{name}` must be {bounds}, got {number}")
    return number


def _float(name: str, value: Any, low: float | None = None) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be a number, got {value!r}") from None
    if low is not None and number < low:
        raise ConfigError(f"`{name}` must be >= {low}, got {number}")
    return number


def _offset(value: Any) -> tuple[str, str]:
    """`mask_offset` as two strings, each pixels (`12`) or a percentage of the image (`2%`)."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or len(parts) != 2:
        raise ConfigError(f"`mask_offset` must be X,Y (pixels or percentages), got {value!r}")
    out = []
    for part in parts:
        text = str(part).strip()
        if not re.fullmatch(r"-?\d+(\.\d+)?%?", text) or (not text.endswith("%") and "." in text):
            raise ConfigError(
                f"`mask_offset` parts must be integer pixels (12) or percentages (2.5%), "
                f"got {part!r}"
            )
        out.append(text)
    return out[0], out[1]


def _normal_output(url: str) -> str:
    """`output` in one spelling that every write uses: a local path is normalised (`./a//b/..`
    means what the OS says it means); a URL with `..`, `.` or empty path segments is refused,
    since object stores keep such keys literally while path joins collapse them."""
    if "://" not in url:
        return posixpath.normpath(url) if url else url
    scheme, path = url.split("://", 1)
    parts = path.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError(
            f"`output` {url!r} has '..', '.' or empty ('//') path segments; write the location "
            "out in full (object stores keep such keys literally)"
        )
    return f"{scheme}://{'/'.join(parts)}"
