"""Offline safety/quality detectors as scores-registry models (dataset2metadata shape: see
:mod:`laionflow.scoring.registry`). Weights ship inside the pinned wheels; nothing is
downloaded. Each model loads its weights once in ``__init__`` (per part) and only runs
inference in ``forward`` (per batch); the input is the preprocessor ``rgb-array`` (an RGB
``uint8`` array of the stored image, so boxes are in stored-image pixels).

* ``nsfw-image`` — NudeNet 320n (ONNX): per sample the max score of the *exposed* classes
  and the list of exposed classes found;
* ``faces`` — MTCNN (facenet-pytorch, torch device) or NudeNet's ``FACE_*`` classes
  (``faces_detector: nudenet``): boxes ``[x0, y0, x1, y1]`` and count;
* ``text-area`` — RapidOCR PP-OCRv4 (ONNX): fraction of the image covered by recognised text
  boxes, and the text;
* ``pdq`` — Meta's PDQ hash (64 hex) and its quality (0..100).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch

#: model -> (import name, pip spec, weights file inside the package)
REQUIREMENTS: dict[str, tuple[str, str, str | None]] = {
    "nsfw-image": ("nudenet", "nudenet==3.4.2", "320n.onnx"),
    "faces:mtcnn": ("facenet_pytorch", "facenet-pytorch==2.6.0 --no-deps", "data/onet.pt"),
    "faces:nudenet": ("nudenet", "nudenet==3.4.2", "320n.onnx"),
    "text-area": (
        "rapidocr_onnxruntime",
        "rapidocr-onnxruntime==1.4.4 --no-deps",
        "models/ch_PP-OCRv4_det_infer.onnx",
    ),
    "pdq": ("pdqhash", "pdqhash==0.2.8", None),
}
EXPOSED = {
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_EXPOSED",
}
FACE_CLASSES = {"FACE_FEMALE", "FACE_MALE"}


class MissingModelError(ImportError):
    """A declared safety model's package or weights file is not installed."""


def check_installed(requirement: str) -> None:
    """Fail (naming the package and the pip line) when a model cannot be loaded offline."""
    module, pip, weights = REQUIREMENTS[requirement]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            f"model {requirement!r} needs the {module} package: pip install {pip}"
        )
    if weights:
        path = os.path.join(list(spec.submodule_search_locations)[0], weights)
        if not os.path.exists(path):
            raise MissingModelError(f"model {requirement!r}: weights not found at {path}")


def rgb_array(image) -> np.ndarray:
    """Preprocessor ``rgb-array``: the decoded image as an RGB ``uint8`` array."""
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def onnx_providers(device: str) -> list[str]:
    """CUDA first when the device is a GPU and onnxruntime has it, else CPU."""
    import onnxruntime

    have = onnxruntime.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
    return [p for p in wanted if p in have] + ["CPUExecutionProvider"]


def _nudenet(device: str):
    import nudenet
    import onnxruntime
    from nudenet import NudeDetector

    detector = NudeDetector()  # then its session again, on the device's providers
    model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
    detector.onnx_session = onnxruntime.InferenceSession(model, providers=onnx_providers(device))
    return detector


class _Base(torch.nn.Module):
    raw_inputs = ["image"]
    preprocessors = ["rgb-array"]
    dependencies: list[str] = []
    to_device = True  # built with the stage's device; inputs are arrays, never moved


class NsfwImage(_Base):
    name = "nsfw-image"

    def __init__(self, device: str) -> None:
        super().__init__()
        self.detector = _nudenet(device)

    def forward(self, images: list[np.ndarray]) -> list[tuple[float, list[str]]]:
        out = []
        for img in images:
            found = self.detector.detect(img[:, :, ::-1].copy())  # NudeNet reads BGR
            found = [d for d in found if d["class"] in EXPOSED]
            score = max((float(d["score"]) for d in found), default=0.0)
            out.append((score, sorted({d["class"] for d in found})))
        return out


def faces_class(detector: str, min_score: float) -> type:
    """``faces`` with MTCNN (default) or NudeNet's face classes."""

    class Faces(_Base):
        name = "faces"

        def __init__(self, device: str) -> None:
            super().__init__()
            if detector == "nudenet":
                self.nude = _nudenet(device)
            else:
                from facenet_pytorch import MTCNN

                self.mtcnn = MTCNN(keep_all=True, device=torch.device(device))
                self.device_type = torch.device(device).type

        def forward(self, images: list[np.ndarray]) -> list[list[list[float]]]:
            if detector == "nudenet":
                return [self._nudenet_boxes(img) for img in images]
            out: list = [None] * len(images)
            by_size: dict[tuple, list[int]] = {}
            for i, img in enumerate(images):  # MTCNN batches equal-size images only
                by_size.setdefault(img.shape, []).append(i)
            for idx in by_size.values():
                # MTCNN's thresholds are tuned in float32: out of the stage's fp16 autocast
                with torch.autocast(self.device_type, enabled=False):
                    boxes, probs = self.mtcnn.detect(np.stack([images[i] for i in idx]))
                for i, b, p in zip(idx, boxes, probs, strict=True):
                    keep = [] if b is None else [j for j, s in enumerate(p) if s >= min_score]
                    out[i] = [[round(float(v), 1) for v in b[j]] for j in keep]
            return out

        def _nudenet_boxes(self, img: np.ndarray) -> list[list[float]]:
            found = self.nude.detect(img[:, :, ::-1].copy())
            return [
                [float(x), float(y), float(x + w), float(y + h)]
                for d in found
                if d["class"] in FACE_CLASSES and d["score"] >= min_score
                for x, y, w, h in [d["box"]]
            ]

    return Faces


def text_area_class(text_score: float) -> type:
    """``text-area``: RapidOCR detection + recognition; boxes whose text scores below
    ``text_score`` do not count."""

    class TextArea(_Base):
        name = "text-area"

        def __init__(self, device: str) -> None:
            super().__init__()
            from rapidocr_onnxruntime import RapidOCR

            cuda = device.startswith("cuda") and "CUDAExecutionProvider" in onnx_providers(device)
            self.ocr = RapidOCR(
                text_score=text_score, det_use_cuda=cuda, rec_use_cuda=cuda, cls_use_cuda=cuda
            )

        def forward(self, images: list[np.ndarray]) -> list[tuple[float, str]]:
            import cv2

            out = []
            for img in images:
                result, _ = self.ocr(img[:, :, ::-1].copy(), use_cls=False)
                mask = np.zeros(img.shape[:2], np.uint8)
                for box, _text, _score in result or []:
                    cv2.fillPoly(mask, [np.asarray(box, np.int32)], 1)
                text = " ".join(t for _b, t, _s in result or [])
                out.append((float(mask.mean()), text))
            return out

    return TextArea


def pdq_hash(rgb: np.ndarray) -> tuple[str, int]:
    """PDQ of an RGB array: 64 hex digits and the quality."""
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


class Pdq(_Base):
    name = "pdq"

    def __init__(self, device: str) -> None:
        super().__init__()

    def forward(self, images: list[np.ndarray]) -> list[tuple[str, int]]:
        return [pdq_hash(img) for img in images]


def lookups(faces_detector: str, face_min_score: float, text_score: float) -> dict:
    """The registry's additions: models, the preprocessor and the postprocess columns."""
    return {
        "models": {
            "nsfw-image": NsfwImage,
            "faces": faces_class(faces_detector, face_min_score),
            "text-area": text_area_class(text_score),
            "pdq": Pdq,
        },
        "preprocessors": {"rgb-array": rgb_array},
        "columns": {
            "nsfw_image": lambda out: [s for s, _ in out["nsfw-image"]],
            "nsfw_classes": lambda out: [c for _, c in out["nsfw-image"]],
            "faces": lambda out: [len(b) for b in out["faces"]],
            "face_boxes": lambda out: out["faces"],
            "text_area": lambda out: [a for a, _ in out["text-area"]],
            "text": lambda out: [t for _, t in out["text-area"]],
            "pdq": lambda out: [h for h, _ in out["pdq"]],
            "pdq_quality": lambda out: [q for _, q in out["pdq"]],
        },
    }
