"""The recipe's ``safety`` and ``buckets`` sections (plain pydantic, no heavy imports).

    safety:
      hashlists:                    # on when any list is given; files local or s3://
        urls: lists/bad_urls.txt          # one URL a line          (before download)
        url_hashes: lists/url_sha256.txt  # hex md5/sha1/sha256 of the URL, by length
        md5: lists/md5.txt                # hex MD5 of the stored image bytes (after download)
        sha256: lists/sha256.txt          # hex SHA-256 of the stored image bytes
        pdq: lists/pdq.txt                # 64-hex PDQ hashes (optionally ",quality")
        pdq_distance: 31                  # Hamming distance at or below which PDQ matches
      blur_faces: false             # stage ``blur``: blurred copies of the shards
      blur_min_score: 0.9

Every list file is plain text: one entry a line, ``#`` starts a comment, blank lines ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HashLists(BaseModel):
    model_config = ConfigDict(extra="forbid")
    urls: str | None = None
    url_hashes: str | None = None
    md5: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_distance: int = Field(default=31, ge=0, le=256)

    @property
    def pre_download(self) -> bool:
        return bool(self.urls or self.url_hashes)

    @property
    def post_download(self) -> bool:
        return bool(self.md5 or self.sha256 or self.pdq)


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hashlists: HashLists = Field(default_factory=HashLists)
    #: stage ``blur``: write face-blurred copies of the shards (needs the ``face_boxes`` column)
    blur_faces: bool = False
    #: Gaussian blur radius, as a fraction of the face box's longer side
    blur_radius: float = Field(default=0.2, gt=0, le=1)


#: SD 2.x buckets (multiples of 64 around 512², as the SD2 / kohya trainers use)
SD2_BUCKETS: list[tuple[int, int]] = [
    (512, 512),
    (576, 448),
    (448, 576),
    (640, 384),
    (384, 640),
    (704, 320),
    (320, 704),
    (768, 320),
    (320, 768),
    (832, 256),
    (256, 832),
    (896, 256),
    (256, 896),
    (960, 256),
    (256, 960),
    (1024, 256),
    (256, 1024),
]
#: SDXL's published buckets (about 1024², multiples of 64)
SDXL_BUCKETS: list[tuple[int, int]] = [
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
]


class BucketConfig(BaseModel):
    """Aspect-ratio buckets written into the annotations and the sample metadata."""

    model_config = ConfigDict(extra="forbid")
    #: ``sd2``, ``sdxl`` or ``custom`` (then ``sizes`` lists ``[width, height]`` pairs)
    preset: str = Field(default="sd2", pattern="^(sd2|sdxl|custom)$")
    sizes: list[tuple[int, int]] = Field(default_factory=list)

    def bucket_sizes(self) -> list[tuple[int, int]]:
        if self.preset == "custom":
            if not self.sizes:
                raise ValueError("buckets: preset custom needs `sizes`")
            return [tuple(s) for s in self.sizes]
        return SD2_BUCKETS if self.preset == "sd2" else SDXL_BUCKETS
