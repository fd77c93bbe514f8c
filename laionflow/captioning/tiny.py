"""A tiny BLIP captioner (≈60k parameters, random weights, a 64-word vocabulary) built from a
``transformers`` config and saved with ``save_pretrained``: a real model folder that the
recaption stage loads through ``from_pretrained(path)`` offline, for tests, the demo and the
bench's plumbing check. Its captions are word salad; their plumbing is what it tests.
"""

from __future__ import annotations

import os
from pathlib import Path

WORDS = (
    "a an the of in on with and at by picture photo image view close up old new small large "
    "red blue green white black yellow brown gray dark bright cat dog bird horse car bike boat "
    "house tree flower sky sea road city street person man woman child group table room field "
    "mountain beach snow water night day sitting standing"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]


def save_tiny_captioner(path: str | os.PathLike, seed: int = 0, image_size: int = 32) -> str:
    """Write the model, its BERT tokenizer and BLIP processor to ``path``; return the path."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
    size = {"height": image_size, "width": image_size}
    processor = BlipProcessor(image_processor=BlipImageProcessor(size=size), tokenizer=tokenizer)
    ids = {"bos_token_id": 5, "pad_token_id": 0, "sep_token_id": 3, "eos_token_id": 3}
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = BlipConfig(
        text_config={
            **small,
            **ids,
            "vocab_size": len(SPECIAL) + len(WORDS),
            "num_attention_heads": 2,
            "max_position_embeddings": 128,
        },
        vision_config={
            **small,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return str(out)
