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
