"""Typed recipe schema.

A recipe is everything a run needs to know, validated before any work starts: pydantic with
``extra="forbid"`` everywhere, so a misspelled key fails with the field's dotted path instead
of being silently ignored three hours into a download.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from laionflow.captioning.config import RecaptionConfig
from laionflow.credentials import url_secret
from laionflow.recipes.vectors import DedupConfig, IndexConfig
from laionflow.safety.config import BucketConfig, SafetyConfig
from laionflow.schema import CANONICAL_TYPES
from laionflow.web.reasons import RETRYABLE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MetadataSource(_Strict):
    """Where the raw metadata parts come from (Hugging Face ``resolve`` URLs or any http(s))."""

    urls: list[str] = Field(min_length=1)
    retries: int = Field(default=5, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    #: already filtered: no rule, no dedup, ``prefiltered_urls`` fetched (recipes/prefilter.py)
    prefiltered: bool = False
    prefiltered_urls: list[str] | None = Field(default=None, min_length=1)

    @field_validator("urls", "prefiltered_urls")
    @classmethod
    def _http_or_local(cls, urls: list[str] | None) -> list[str] | None:
        for url in urls or ():
            if not url.startswith(("http://", "https://", "file://", "hf://datasets/", "/")):
                raise ValueError(
                    f"metadata url {url!r} must be http(s)://, hf://datasets/..., file:// or a path"
                )
            secret = url_secret(url)
            if secret:  # the URL would end up in run configs, logs and reports
                raise ValueError(
                    f"metadata url #{urls.index(url)} carries {secret}: put credentials in an "
                    "Airflow connection or the environment (HF_TOKEN, AWS_*), not in the URL"
                )
        return urls


class FilterRule(_Strict):
    """``column op value``; a row failing it is counted under ``name``. A null fails a
    comparison (``>=``, ``==``, ``in``...) but passes ``!=``/``not_in``. Rules are evaluated in
    order and a row is attributed to the first one it fails."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    column: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in", "not_in"]
    value: float | int | str | list[float | int | str]
    #: "pass" keeps rows whose value is missing (e.g. ``lang = en`` where a language exists)
    missing: Literal["fail", "pass"] = "fail"

    @field_validator("column")
    @classmethod
    def _known_column(cls, column: str) -> str:
        if column not in CANONICAL_TYPES and column != "aspect_ratio":
            raise ValueError(
                f"unknown column {column!r}; canonical columns: "
                f"{sorted([*CANONICAL_TYPES, 'aspect_ratio'])}"
            )
        return column

    @model_validator(mode="after")
    def _value_matches_op(self) -> FilterRule:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"rule {self.name!r}: op {self.op!r} needs a list value")
        if self.op not in ("in", "not_in") and isinstance(self.value, list):
            raise ValueError(f"rule {self.name!r}: op {self.op!r} needs a scalar value")
        return self


class FilterConfig(_Strict):
    rules: list[FilterRule] = Field(default_factory=list)
    dedup_keys: list[str] = Field(default_factory=lambda: ["url", "caption"])
    shuffle: bool = True
    seed: int = 0
    num_parts: int = Field(default=32, ge=1, le=100_000)
    #: longer captions are filtered as ``caption_too_long`` (CLIP reads 77 tokens anyway)
    max_caption_chars: int = Field(default=4096, ge=1)
    #: ``spark`` (the cluster path) or ``duckdb`` (one process, no JVM): byte-identical parts
    #: and counts; unset: ``$LAIONFLOW_FILTER_ENGINE``, else spark (laionflow.stages)
    engine: Literal["spark", "duckdb"] | None = None

    @field_validator("dedup_keys")
    @classmethod
    def _known_keys(cls, keys: list[str]) -> list[str]:
        if not keys:  # the shuffle places rows by their keys: none would put all in one part
            raise ValueError(
                "needs at least one key; to drop only rows identical in every column, list "
                f"them all: {list(CANONICAL_TYPES)}"
            )
        unknown = [k for k in keys if k not in CANONICAL_TYPES]
        if unknown:
            raise ValueError(
                f"unknown dedup key(s) {unknown}; canonical: {sorted(CANONICAL_TYPES)}"
            )
        return keys

    @model_validator(mode="after")
    def _unique_rule_names(self) -> FilterConfig:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"filter rule names must be unique, got {names}")
        return self


class OptOutConfig(_Strict):
    """Opt-out signals honoured for every image (all on by default). Switching one off is
    logged loudly and recorded in each part's summary: never silent."""

    robots: bool = True  # robots.txt (RFC 9309) for ``user_agent_token``, before the fetch
    x_robots_tag: bool = True  # X-Robots-Tag directives in ``disallowed_header_directives``
    tdmrep: bool = True  # /.well-known/tdmrep.json before the fetch, tdm-reservation header
    content_usage: bool = True  # IETF aipref Content-Usage header (train-ai=n...)


class PolitenessConfig(_Strict):
    """Per-host budget shared by every download process of a node (see laionflow.web.budget)."""

    #: requests per second per host; 0: no fixed rate (a host's 429/503 + Retry-After still
    #: sets one, halved on each, recovering on success)
    rate_per_host: float = Field(default=0.0, ge=0)
    #: a URL whose host slot (Retry-After, backoff, rate) is further away fails ``rate_limited``
    max_wait_s: float = Field(default=60.0, ge=0)
    #: times in a row a host is unreachable (refused, timed out) before its circuit opens
    #: (its URLs ``host_unavailable``, retried by the repair pass; a 5xx only backs off); 0: never
    breaker_failures: int = Field(default=5, ge=0)
    breaker_cooldown_s: float = Field(default=300.0, ge=0)


class DownloadConfig(_Strict):
    """img2dataset options, with img2dataset's own names and meanings."""

    image_size: int = Field(default=256, ge=8, le=8192)
    resize_mode: Literal["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"] = (
        "border"
    )
    resize_only_if_bigger: bool = False
    skip_reencode: bool = False
    output_format: Literal["webdataset", "files", "parquet", "tfrecord"] = "webdataset"
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    number_sample_per_shard: int = Field(default=10_000, ge=1)
    processes: int = Field(default=2, ge=1)
    threads: int = Field(default=16, ge=1)
    #: the longest any single socket operation (connect, one read) may wait
    timeout_s: int = Field(default=10, ge=1)
    #: one image fetch in all — DNS, connect, headers, body, every redirect — or ``deadline``
    deadline_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=0, ge=0)
    user_agent_token: str = "laionflow"
    #: False skips TLS certificate checks (the SD 2.1 prep guide's patch); logged loudly
    ssl_verify: bool = True
    disallowed_header_directives: list[str] = Field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )
    #: images declaring more pixels are refused before decoding (decompression bombs);
    #: the default is Pillow's DecompressionBombError threshold
    max_image_pixels: int = Field(default=178_956_970, ge=1)
    #: at most this many concurrent requests per host over all download processes; 0: no limit
    per_domain_concurrency: int = Field(default=4, ge=0)
    optout: OptOutConfig = Field(default_factory=OptOutConfig)
    politeness: PolitenessConfig = Field(default_factory=PolitenessConfig)


class RepairConfig(_Strict):
    """Re-downloading failed URLs: which failures are retried, how often and how soon."""

    #: attempts per URL, the first download included; then it is ``given_up`` with its reason
    max_attempts: int = Field(default=5, ge=1)
    #: wait after attempt n before the next: ``backoff_s * backoff_factor ** (n - 1)``
    backoff_s: float = Field(default=3600.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    #: failure reasons worth retrying (server errors, rate limits, network trouble — never a
    #: 404, an opt-out, a refused address or an undecodable image)
    retryable: list[str] = Field(default_factory=lambda: list(RETRYABLE))


class ClipConfig(_Strict):
    """open_clip model; ``pretrained`` is a tag (downloaded by open_clip) or a local checkpoint."""

    model: str = "ViT-B-32"
    pretrained: str | None = "laion400m_e32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=256, ge=1)
    num_workers: int = Field(default=2, ge=0)
    #: ``tensor``: JPEGs decoded and preprocessed as a batch on the model's device (nvjpeg on a
    #: GPU); ``pil``: PIL in DataLoader workers; ``auto``: tensor on CUDA when nvjpeg works
    decode: Literal["auto", "pil", "tensor"] = "auto"


class ScoreRule(_Strict):
    """``column op value`` over any scores column (``nsfw_image <= 0.5``, ``faces == 0``);
    a sample failing it is counted under ``name`` (the first rule it fails, in order)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    column: str
    op: Literal[">=", ">", "<=", "<", "==", "!="]
    value: float | int | str


class ScoreFilterConfig(_Strict):
    """Stage ``score_filter``: keep samples by a scores column (one of threshold/top_fraction)
    and/or by ``rules`` (with rules alone, no default top fraction applies)."""

    column: str = "clip-score"
    threshold: float | None = None
    top_fraction: float | None = Field(default=0.3, gt=0, le=1)
    rules: list[ScoreRule] = Field(default_factory=list)
    reshard: bool = False
    samples_per_shard: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _one_rule(self) -> ScoreFilterConfig:
        if self.rules and self.threshold is None and "top_fraction" not in self.model_fields_set:
            self.__dict__["top_fraction"] = None  # rules alone: nothing else filters
        elif self.threshold is not None:
            self.__dict__["top_fraction"] = None  # an explicit threshold wins over the default
        elif self.top_fraction is None and not self.rules:  # (a resolved config: both)
            raise ValueError("score_filter needs `threshold` or `top_fraction`")
        return self


class PrepackagedSource(_Strict):
    """Tar packs and an index file in a Hugging Face dataset repo (laion6m's distribution)."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    revision: str = "main"
    endpoint: str | None = Field(default=None, description="Hub URL; default $HF_ENDPOINT")
    packs: str = "raw/*.tar"
    extra_packs: list[str] = Field(default_factory=lambda: ["captions/*.tar"])
    index_file: str = "data.json"
    workers: int = Field(default=4, ge=1)
    start: int | None = Field(default=None, ge=0, description="first pack (sorted), inclusive")
    end: int | None = Field(default=None, ge=0, description="last pack, exclusive")


class Recipe(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    root: str = Field(
        default="./data",
        description="parent folder (or s3:// URL); the dataset lives at ROOT/<name>",
    )
    metadata: MetadataSource
    columns: dict[str, str] = Field(default_factory=dict)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    repair: RepairConfig = Field(default_factory=RepairConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    score_filter: ScoreFilterConfig = Field(default_factory=ScoreFilterConfig)
    recaption: RecaptionConfig = Field(default_factory=RecaptionConfig)
    #: scores YAML (dataset2metadata style) for the ``scores`` stage; none: no scores
    scores: str | None = None
    #: known-bad hash lists and face blurring (:mod:`laionflow.safety.config`)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    #: aspect-ratio buckets in the annotations and sample metadata; none: no buckets
    buckets: BucketConfig | None = None
    source: Literal["rederive", "prepackaged"] = "rederive"
    prepackaged: PrepackagedSource | None = None
    part_ids: list[int] | None = Field(
        default=None, description="restrict download and later stages to these parts"
    )

    @model_validator(mode="after")
    def _prepackaged_needs_a_source(self) -> Recipe:
        if self.source == "prepackaged" and self.prepackaged is None:
            raise ValueError("source=prepackaged needs a `prepackaged` section (repo, packs...)")
        return self

    @property
    def dataset_root(self) -> str:
        return self.root.rstrip("/") + "/" + self.name
