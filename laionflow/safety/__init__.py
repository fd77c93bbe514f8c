"""Safety and quality signals: offline detectors (NSFW, faces, text, PDQ), known-bad hash
lists, face blurring and SD aspect-ratio buckets — one small module per concern."""
