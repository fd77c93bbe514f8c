"""The recipe's ``recaption:`` section (kept here, next to the stage, so the recipe schema
stays one readable page); :mod:`laionflow.recipes.schema` embeds it as ``Recipe.recaption``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RecaptionConfig(_Strict):
    """Stage ``recaption``: a vision-language model (``transformers`` AutoProcessor +
    AutoModelForImageTextToText) writes a new caption per image, scored with the recipe's CLIP
    model against the image, as Recap-DataComp does; off unless a recipe turns it on."""

    enabled: bool = False
    #: a Hugging Face Hub id (fetched by transformers' cache) or a local folder (no network)
    model: str = "Salesforce/blip-image-captioning-base"
    #: text given with the image: a caption prefix (BLIP, GIT) or, for chat models, the user turn
    prompt: str = "a picture of"
    #: wrap the prompt in the processor's chat template with an image turn; auto: when it has one
    chat_template: Literal["auto", "yes", "no"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: auto: float16 on CUDA, float32 on CPU (bfloat16 on CPU pays off only with AMX)
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    batch_size: int = Field(default=16, ge=1)
    max_new_tokens: int = Field(default=48, ge=1)
    #: samples per published chunk: a killed part resumes from its last finished chunk
    chunk_size: int = Field(default=512, ge=1)
    #: keep the new caption only when its CLIP score is >= the original's (``original``) or
    #: >= ``min_score`` (``threshold``); a rejected one leaves the alt text as the caption
    gate: Literal["none", "original", "threshold"] = "none"
    min_score: float | None = None
    #: write ``export/openuni/{raw,captions,data.json}`` (OpenUni's CaptionDataset layout)
    export_openuni: bool = True

    @model_validator(mode="after")
    def _threshold_needs_score(self) -> RecaptionConfig:
        if self.gate == "threshold" and self.min_score is None:
            raise ValueError("recaption.gate=threshold needs recaption.min_score")
        return self
