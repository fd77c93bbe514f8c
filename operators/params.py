"""The trigger form shared by every recipe DAG: Params with titles, markdown descriptions,
sections and enums. A null value means "use the recipe's own setting"."""

from __future__ import annotations

from airflow.sdk import Param


def prepackaged_params() -> dict[str, Param]:
    """Extra Params of recipes distributed as tar packs (laion6m)."""
    return {
        "source": Param(
            "rederive",
            type="string",
            title="Source",
            enum=["rederive", "prepackaged"],
            description_md="`prepackaged`: fetch and extract the published tar packs; "
            "`rederive`: filter the metadata and download the images.",
            section="Where",
        ),
        "pack_start": Param(
            None,
            type=["null", "integer"],
            title="First pack",
            minimum=0,
            description_md="Extract packs from this index (sorted), inclusive.",
            section="Where",
        ),
        "pack_end": Param(
            None,
            type=["null", "integer"],
            title="End pack",
            minimum=0,
            description_md="...up to this index, exclusive.",
            section="Where",
        ),
        "extract_workers": Param(
            None,
            type=["null", "integer"],
            title="Extraction workers",
            minimum=1,
            description_md="Parallel extraction processes.",
            section="Where",
        ),
    }


def recipe_params() -> dict[str, Param]:
    def p(default, types, title, description_md, section, **schema):
        return Param(
            default,
            type=types,
            title=title,
            description_md=description_md,
            section=section,
            **schema,
        )

    return {
        "root": p(
            None,
            ["null", "string"],
            "Dataset root",
            "Parent folder or `s3://bucket/prefix`; the dataset is written to "
            "`ROOT/<recipe>`. Empty: the recipe's `root`.",
            "Where",
        ),
        "metadata_urls": p(
            None,
            ["null", "array"],
            "Metadata URLs",
            "Metadata parts to fetch (`https://...`, "
            "`hf://datasets/OWNER/NAME/GLOB`). Empty: the recipe's.",
            "Where",
            items={"type": "string"},
        ),
        "part_ids": p(
            None,
            ["null", "array"],
            "Part ids",
            "Only download/embed these parts (backfill by part id), e.g. `[3, 4, 7]`. "
            "Empty: every part.",
            "Where",
            items={"type": "integer", "minimum": 0},
        ),
        "num_parts": p(
            None,
            ["null", "integer"],
            "Number of parts",
            "Output parts after the shuffle.",
            "Filter",
            minimum=1,
        ),
        "image_size": p(
            None,
            ["null", "integer"],
            "Image size",
            "img2dataset `image_size` in pixels.",
            "Images",
            minimum=8,
            maximum=8192,
        ),
        "resize_mode": p(
            None,
            ["null", "string"],
            "Resize mode",
            "img2dataset `resize_mode`.",
            "Images",
            enum=[None, "no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"],
        ),
        "output_format": p(
            None,
            ["null", "string"],
            "Output format",
            "Shard format written by img2dataset.",
            "Images",
            enum=[None, "webdataset", "files", "parquet", "tfrecord"],
        ),
        "processes": p(
            None,
            ["null", "integer"],
            "Download processes",
            "img2dataset `processes_count`.",
            "Images",
            minimum=1,
        ),
        "threads": p(
            None,
            ["null", "integer"],
            "Download threads",
            "img2dataset `thread_count`.",
            "Images",
            minimum=1,
        ),
        "ssl_verify": p(
            None,
            ["null", "boolean"],
            "Verify TLS certificates",
            "Set to false to skip certificate checks (the SD 2.1 guide's patch "
            "for hosts with broken chains). Logged loudly when off.",
            "Images",
        ),
        "clip_model": p(
            None,
            ["null", "string"],
            "CLIP model",
            "Any open_clip model name, e.g. `ViT-B-32`.",
            "CLIP",
        ),
        "clip_pretrained": p(
            None,
            ["null", "string"],
            "CLIP weights",
            "open_clip pretrained tag (e.g. `laion400m_e32`) or a local checkpoint path.",
            "CLIP",
        ),
        "device": p(
            None,
            ["null", "string"],
            "Device",
            "`auto` uses CUDA when present.",
            "CLIP",
            enum=[None, "auto", "cpu", "cuda"],
        ),
        "min_image_size": p(
            None,
            ["null", "integer"],
            "Minimum width and height",
            "Threshold of the recipe's `min_width`/`min_height` rules (pixels, from the metadata).",
            "Filter",
            minimum=0,
        ),
        "min_similarity": p(
            None,
            ["null", "number"],
            "Minimum CLIP similarity",
            "Threshold of the `min_similarity` rule.",
            "Filter",
            minimum=0,
            maximum=1,
        ),
        "max_punsafe": p(
            None,
            ["null", "number"],
            "Maximum punsafe",
            "Threshold of the `max_punsafe` rule (probability of unsafe).",
            "Filter",
            minimum=0,
            maximum=1,
        ),
        "min_aesthetic": p(
            None,
            ["null", "number"],
            "Minimum aesthetic score",
            "Threshold of the `min_aesthetic` rule.",
            "Filter",
            minimum=0,
            maximum=10,
        ),
        "max_aspect_ratio": p(
            None,
            ["null", "number"],
            "Maximum aspect ratio",
            "Threshold of the `max_aspect_ratio` rule (long side / short side).",
            "Filter",
            minimum=1,
        ),
        "max_output_bytes": p(
            None,
            ["null", "integer"],
            "Maximum output bytes",
            "Stop before downloading when the estimated output is larger "
            "(e.g. `2000000000000` for 2 TB).",
            "Run",
            minimum=0,
        ),
        "dry_run": p(
            False,
            "boolean",
            "Dry run",
            "Fetch and filter the metadata, print the storage/time estimate, and stop "
            "before downloading images.",
            "Run",
        ),
        "force": p(False, "boolean", "Force", "Redo stages whose outputs already exist.", "Run"),
        "overrides": p(
            {},
            "object",
            "Recipe overrides",
            'Any recipe field by dotted path, e.g. `{"download.number_sample_per_shard": 1000}`.',
            "Run",
        ),
    }
