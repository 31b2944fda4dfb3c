import pytest

from geothaw.config import load_config, validate_config
from geothaw.errors import ConfigError


def test_packaged_defaults_load():
    cfg = load_config()
    assert cfg.name == "alaska"
    assert cfg.domain.resolution == 0.1
    assert cfg.period.start_year == 1950 and cfg.period.projection_end_year == 2100
    quick = load_config(base="quick")
    assert quick.name == "quick" and quick.data.synthetic.coarsen == 10
    # quick only overrides some keys; the rest come from alaska.yaml
    assert quick.projection.scenarios == ["rcp45", "rcp85"]


def test_committed_proxy_config_loads():
    # benchmarks/proxy_05deg.yaml is the 0.5° proxy that docs/results.md §5g-§5i quote; it must stay valid
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / "benchmarks" / "proxy_05deg.yaml")
    assert cfg.name == "proxy05" and cfg.data.synthetic.coarsen == 5 and cfg.training.models == ["transformer"]
    assert cfg.training.max_train_cells == 600 and cfg.training.epochs == 25 and cfg.period.start_year == 1950


def test_user_file_merges_over_defaults(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("name: mine\ntraining:\n  epochs: 3\n")
    cfg = load_config(p)
    assert cfg.name == "mine" and cfg.training.epochs == 3 and cfg.training.batch_size == 512


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("training:\n  epoch: 3\n", "training.epoch"),  # typo → unknown key
        ("bogus: 1\n", "bogus"),
        ("training:\n  epochs: many\n", "training.epochs"),  # wrong type
        ("training:\n  epochs: -1\n", "training.epochs"),  # impossible value
        ("period:\n  start_year: 2000\n  end_year: 1990\n", "period"),  # end before start
        ("domain:\n  lat_min: 70\n  lat_max: 60\n", "domain"),
        ("projection:\n  scenarios: [rcp99]\n", "projection.scenarios.0"),
        ("data:\n  source: files\n  era5land: [does/not/exist.nc]\n", "data"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, yaml_text, key):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert f"'{key}'" in msg, msg
    assert "\n" not in msg


def test_end_year_message_is_specific(tmp_path):
    with pytest.raises(ConfigError, match=r"end_year \(1990\) must be after start_year \(2000\)"):
        load_config(overrides=["period.start_year=2000", "period.end_year=1990"])


def test_overrides_and_missing_file(tmp_path):
    assert load_config(overrides=["training.epochs=7"]).training.epochs == 7
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must look like"):
        load_config(overrides=["training.epochs"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_config_hash_is_stable_and_sensitive():
    a = validate_config({})
    b = validate_config({})
    assert a.hash() == b.hash()
    assert a.hash("domain") == validate_config({"training": {"epochs": 2}}).hash("domain")
    assert a.hash("training") != validate_config({"training": {"epochs": 2}}).hash("training")


def test_config_reference_doc_is_current():
    from pathlib import Path

    from geothaw.config import config_reference

    doc = Path(__file__).parents[1] / "docs" / "config.md"
    assert doc.read_text().strip() == config_reference().strip(), "regenerate: python -m geothaw.config > docs/config.md"


def test_shortlist_is_on_by_default_and_off_as_the_readme_says():
    assert load_config().training.shortlist_epochs == 8
    off = load_config(overrides=["training.shortlist_epochs=null"])
    assert off.training.shortlist_epochs is None
    # without a shortlist its size is left out of the hash: configs from before the option keep their hashes
    assert off.hash() == load_config(overrides=["training.shortlist_epochs=null", "training.shortlist_size=3"]).hash()
    assert off.hash() != load_config().hash()
