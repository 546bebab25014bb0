import pytest
import yaml
from conftest import REPO

from debiaslab.errors import DebiaslabError
from debiaslab.params import (
    GROUPS,
    TrainParams,
    load_params,
    merge_overrides,
    parse_group,
    read_params_file,
    validate_all,
)


def write(tmp_path, obj):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


def test_repo_params_and_tiny_profile_validate():
    validate_all(REPO / "params.yaml")
    merged = merge_overrides(read_params_file(REPO / "params.yaml"),
                             read_params_file(REPO / "profiles" / "tiny.yaml"))
    assert set(merged) <= set(GROUPS)
    parse_group(TrainParams, merged["train"], "train")


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(DebiaslabError, match=r"train\.epoch: unknown key .*epochs"):
        load_params("train", path=write(tmp_path, {"train": {"epoch": 3}}))


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(DebiaslabError, match=r"params.yaml: train\.epochs: expected an integer, got 'ten'"):
        load_params("train", path=write(tmp_path, {"train": {"epochs": "ten"}}))


def test_bool_is_not_an_integer(tmp_path):
    with pytest.raises(DebiaslabError, match="train.batch_size"):
        load_params("train", path=write(tmp_path, {"train": {"batch_size": True}}))


def test_unknown_attribute_lists_valid_names(tmp_path):
    with pytest.raises(DebiaslabError, match=r"unknown attribute 'Smilng' \(valid: .*Smiling"):
        load_params("attributes", path=write(tmp_path, {"attributes": {"targets": ["Smilng"]}}))


def test_unknown_group(tmp_path):
    with pytest.raises(DebiaslabError, match="trian: unknown parameter group"):
        load_params("train", path=write(tmp_path, {"trian": {}}))


def test_literal_and_range_checks(tmp_path):
    with pytest.raises(DebiaslabError, match="train.precision: expected one of 'fp32', 'bf16'"):
        load_params("train", path=write(tmp_path, {"train": {"precision": "fp16"}}))
    with pytest.raises(DebiaslabError, match=r"synthesize\.correlations\.Smiling\.skew"):
        load_params("synthesize", path=write(tmp_path, {"synthesize": {
            "correlations": {"Smiling": {"protected": "Eyeglasses", "skew": 1.5}}}}))


def test_scientific_notation_string_is_a_float(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; it must still count as a number.
    params = load_params("train", path=write(tmp_path, {"train": {"lr": "1e-3"}}))
    assert params["train"].lr == pytest.approx(1e-3)


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(DebiaslabError, match="file not found"):
        load_params("train", path=tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(DebiaslabError, match="not valid YAML"):
        load_params("train", path=bad)
