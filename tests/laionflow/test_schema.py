import pytest

from laionflow.schema import SchemaError, column_mapping


def test_laion400m_parquet_columns_map_to_canonical_names():
    cols = ["SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity"]
    assert column_mapping(cols) == {
        "SAMPLE_ID": "sample_id",
        "URL": "url",
        "TEXT": "caption",
        "HEIGHT": "height",
        "WIDTH": "width",
        "LICENSE": "license",
        "NSFW": "nsfw",
        "similarity": "similarity",
    }


def test_csv_and_aesthetics_spellings():
    mapping = column_mapping(["url", "caption", "AESTHETIC_SCORE", "punsafe", "LANGUAGE"])
    assert mapping["AESTHETIC_SCORE"] == "aesthetic"
    assert mapping["LANGUAGE"] == "language"


def test_unknown_columns_are_dropped_not_fatal():
    assert "extra" not in column_mapping(["URL", "TEXT", "extra"])


def test_missing_required_column_names_found_and_expected():
    with pytest.raises(SchemaError) as err:
        column_mapping(["link", "TEXT", "WIDTH"])
    msg = str(err.value)
    assert "['url']" in msg and "link" in msg and "WIDTH" in msg


def test_override_maps_an_odd_column_and_rejects_unknown_targets():
    assert column_mapping(["link", "alt"], {"link": "url", "alt": "caption"}) == {
        "link": "url",
        "alt": "caption",
    }
    with pytest.raises(SchemaError, match="not a canonical column"):
        column_mapping(["link", "alt"], {"link": "uri"})


def test_two_columns_for_one_canonical_name_is_an_error():
    with pytest.raises(SchemaError, match="both map to 'caption'"):
        column_mapping(["url", "TEXT", "caption"])


@pytest.mark.parametrize(
    "flavour", ["laion400m", "laion2b_aesthetics", "laion_art", "aesthetics_12m_umap"]
)
def test_every_known_laion_column_set_normalises(flavour):
    from laionflow.testing.corpus import FLAVOURS

    mapping = column_mapping(FLAVOURS[flavour])
    canonical = set(mapping.values())
    assert {"url", "caption", "width", "height", "similarity"} <= canonical
    if flavour != "laion400m":
        assert "aesthetic" in canonical and "punsafe" in canonical
    if flavour == "laion_art":
        assert "language" in canonical
    lower = column_mapping([c.lower() for c in FLAVOURS[flavour]])  # the csv spellings
    assert set(lower.values()) == canonical


def test_laion_art_language_rule_keeps_english_only(spark, tmp_path):
    import pandas as pd

    from laionflow.jobs.filter import run_spark
    from laionflow.recipes import load_recipe
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    corpus = build_corpus(
        tmp_path / "fx",
        "http://127.0.0.1:9",
        CorpusSpec(rows=120, parts=1, seed=5, flavour="laion_art"),
    )
    raw = tmp_path / "laion2b_en_sd21" / "metadata" / "raw"
    raw.mkdir(parents=True)
    (raw / "p.parquet").write_bytes(open(corpus.metadata_files[0], "rb").read())
    recipe = load_recipe(
        "laion2b_en_sd21",
        {"root": str(tmp_path), "filter.num_parts": 1},
        {"min_width": 0, "min_height": 0},
    )
    stats = run_spark(spark, recipe)
    kept = pd.read_parquet(tmp_path / "laion2b_en_sd21/metadata/filtered/part-00000.parquet")
    assert stats["filtered"].get("language", 0) > 0
    assert set(kept["language"]) == {"en"}
