"""Exports of a finished dataset into layouts other tools read (OpenUni's laion6m)."""
