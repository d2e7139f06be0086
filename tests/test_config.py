from pathlib import Path

import pytest

from mer_ensemble.config import apply_overrides, load_config
from mer_ensemble.errors import ConfigError


def test_loads_and_overrides(generic_config: Path):
    cfg = load_config(generic_config, ["cv.folds=4", "models.0.params={C: 0.5}", "cv.seeds=3"])
    assert cfg.cv.folds == 4
    assert cfg.models[0].params == {"C": 0.5}
    assert cfg.cv.seeds == [0, 1, 2]
    assert cfg.default_workdir() == Path("runs") / "exp"


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.featurs=1", "unknown key 'data.featurs'; allowed: layout, root, features"),
        ("cv.folds=many", "cv.folds"),
        ("cv.folds=1", "cv.folds"),
        ("data.layout=csv", "data.layout"),
        ("task=mer2030", "unknown task 'mer2030'"),
        ("models=[{name: linear, id: a}, {name: mlp, id: a}]", "duplicate run id 'a'"),
        ("data.features={audio: [x], text: [x]}", "listed twice"),
        ("models.5.id=z", "index 5 out of range"),
    ],
)
def test_config_errors_name_the_key(generic_config: Path, override: str, message: str):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(generic_config, [override])


def test_missing_required_key(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("task: generic\ndata:\n  layout: generic\n  features: {a: [f]}\n")
    with pytest.raises(ConfigError, match="missing required key 'data.root'"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_set_needs_equals():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_overrides({}, ["cv.folds"])
    assert apply_overrides({}, ["a.b.c=[1, 2]"]) == {"a": {"b": {"c": [1, 2]}}}


@pytest.mark.parametrize("run_id", ["../../escaped", "/abs", "a/b", "lin@r1", ".hidden", "a b", "x" * 101])
def test_run_ids_are_restricted_to_a_safe_character_set(generic_config: Path, run_id: str):
    with pytest.raises(ConfigError, match=r"models.0.id: .* is not a safe run id"):
        load_config(generic_config, [f"models.0.id={run_id!r}"])
    load_config(generic_config, ["models.0.id=lin_v2.1-a+b"])
