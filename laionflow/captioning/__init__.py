"""Synthetic captions (stage ``recaption``): a vision-language model through ``transformers``
writes a caption per downloaded image, scored with the recipe's CLIP model.

Light on import (no torch, no transformers): :mod:`.config` is part of the recipe schema.
"""
