import pytest

from laionflow.plan import overrides_from_params, resolve
from laionflow.recipes import RecipeError, available, load_recipe


def test_bundled_laion400m_recipe_is_valid():
    recipe = load_recipe("laion400m")
    assert "laion400m" in available()
    assert recipe.filter.dedup_keys == ["url", "caption"]
    assert recipe.download.output_format == "webdataset"
    assert recipe.dataset_root.endswith("/laion400m")


def test_bad_recipe_file_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nmetadata: {urls: ['https://h/a.parquet']}\n"
        "download: {image_size: 256, resize_mode: squash}\n"
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(str(bad))
    assert "download.resize_mode" in str(err.value)
    assert "invalid recipe" in str(err.value)


def test_bad_rule_column_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nmetadata: {urls: ['https://h/a.parquet']}\n"
        "filter: {rules: [{name: r, column: widht, op: '>=', value: 1}]}\n"
    )
    with pytest.raises(RecipeError, match=r"filter\.rules\.0\.column.*widht"):
        load_recipe(str(bad))


def test_dedup_needs_a_key():
    """Without keys every row would hash alike: one part, and no key to dedup by."""
    with pytest.raises(RecipeError, match=r"filter\.dedup_keys.*at least one key"):
        load_recipe("laion400m", {"filter.dedup_keys": []})


def test_bad_override_names_the_field():
    with pytest.raises(RecipeError) as err:
        load_recipe("laion400m", {"download.image_size": -5})
    assert "invalid override" in str(err.value)
    assert "download.image_size" in str(err.value)


def test_misspelled_override_is_not_silently_ignored():
    with pytest.raises(RecipeError, match=r"download\.imag_size"):
        load_recipe("laion400m", {"download.imag_size": 128})


def test_params_map_to_recipe_fields():
    recipe = resolve(
        "laion400m",
        {
            "image_size": 384,
            "output_format": "files",
            "part_ids": [1],
            "overrides": {"filter.num_parts": 8},
            "force": True,
        },
    )
    assert recipe.download.image_size == 384
    assert recipe.download.output_format == "files"
    assert recipe.part_ids == [1]
    assert recipe.filter.num_parts == 8


def test_null_params_keep_recipe_values():
    assert overrides_from_params({"image_size": None, "force": False}) == {}
    assert resolve("laion400m", {"image_size": None}).download.image_size == 256


def test_unknown_param_is_rejected():
    with pytest.raises(RecipeError, match="unknown parameter"):
        overrides_from_params({"img_size": 3})


@pytest.mark.parametrize(
    "url, what",
    [
        ("https://user:hunter22@example.org/part.parquet", "a password in the URL"),
        ("https://example.org/part.parquet?token=abc123", "'token'"),
        ("https://b.s3.amazonaws.com/p.parquet?X-Amz-Signature=ff00", "'X-Amz-Signature'"),
    ],
)
def test_credentials_in_metadata_urls_are_refused(url, what):
    with pytest.raises(RecipeError) as err:
        load_recipe("laion400m", {"metadata.urls": [url]})
    assert what in str(err.value) and "hunter22" not in str(err.value)


def test_redact_replaces_known_secrets_everywhere(monkeypatch):
    from laionflow.credentials import describe, redact

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE00001234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    got = redact({"a": ["x s3cr3t-value-xyz y"], "b": 1})
    assert got == {"a": ["x *** y"], "b": 1}
    assert describe() == "AWS key AKIA…1234 (from environment)"


def test_site_overrides_sit_between_the_recipe_and_the_trigger_form(tmp_path, monkeypatch):
    import json

    site = {"root": str(tmp_path / "site"), "download.image_size": 100, "download.threads": 3}
    (tmp_path / "site.json").write_text(json.dumps(site))
    monkeypatch.setenv("LAIONFLOW_SITE_OVERRIDES", str(tmp_path / "site.json"))
    recipe = resolve("laion400m", {"image_size": 40})
    assert recipe.dataset_root == f"{tmp_path}/site/laion400m"
    assert recipe.download.image_size == 40  # the form wins
    assert recipe.download.threads == 3  # the site's default
    (tmp_path / "site.json").write_text(json.dumps({"download.no_such_field": 1}))
    with pytest.raises(RecipeError, match="no_such_field"):
        resolve("laion400m", {})
