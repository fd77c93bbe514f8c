"""Fixture corpus and fixture HTTP server. Shipped in the package: the demo uses them."""
