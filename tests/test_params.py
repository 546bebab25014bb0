import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from debiaslab.errors import DebiaslabError
from debiaslab.params import (
    GROUPS,
    HPARAM_BOUNDS,
    HPARAM_CHOICES,
    METHOD_HPARAMS,
    EvaluateParams,
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


# --------------------------------------------------------------------------- numbers and ranges
@pytest.mark.parametrize(("group", "key", "value", "shown"), [
    ("train", "lr", float("nan"), "nan"),
    ("train", "lr", float("inf"), "inf"),
    ("train", "weight_decay", float("-inf"), "-inf"),
    ("train", "lr", "nan", "'nan'"),  # a string float() would read
    ("gan", "lr_g", float("nan"), "nan"),
    ("gan", "lr_d", float("inf"), "inf"),
    ("leakage", "lr", float("nan"), "nan"),
    ("inversion", "lr", float("inf"), "inf"),
    ("synthesize", "noise_std", float("nan"), "nan"),
])
def test_every_float_must_be_finite(tmp_path, group, key, value, shown):
    with pytest.raises(DebiaslabError) as err:
        load_params(group, path=write(tmp_path, {group: {key: value}}))
    assert str(err.value).endswith(f"params.yaml: {group}.{key}: expected a finite number, got {shown}")


@pytest.mark.parametrize(("group", "values", "message"), [
    ("train", {"weight_decay": -0.1}, "train.weight_decay: expected a number >= 0, got -0.1"),
    ("train", {"lr": 0}, "train.lr: expected a positive number, got 0.0"),
    ("train", {"nproc_per_node": 0}, "train.nproc_per_node: expected an integer in 1..1024, got 0"),
    ("train", {"lr": 10**400}, "train.lr: expected a finite number, got 1000000"),
    ("train", {"batch_size": -4}, "train.batch_size: expected a positive integer, got -4"),
    ("train", {"seed": -1}, "train.seed: expected an integer in 0..4294967295, got -1"),
    ("leakage", {"batch_size": 0}, "leakage.batch_size: expected a positive integer, got 0"),
    ("leakage", {"weight_decay": -1}, "leakage.weight_decay: expected a number >= 0, got -1.0"),
    ("synthesize", {"workers": 0}, "synthesize.workers: expected an integer in 1..1024, got 0"),
    ("prepare", {"image_size": 4}, "prepare.image_size: expected an integer in 8..128, got 4"),
    ("latents", {"batch_size": 0}, "latents.batch_size: expected a positive integer, got 0"),
    ("gan", {"ema_decay": 1}, "gan.ema_decay: expected a number in [0, 1), got 1.0"),
    ("bias_ensemble", {"q": 0}, "bias_ensemble.q: expected a number in (0, 1], got 0.0"),
    ("bias_ensemble", {"epochs": 0}, "bias_ensemble.epochs: expected a positive integer, got 0"),
    ("bias_ensemble", {"seed": 5_000_000}, "bias_ensemble.seed: expected an integer in 0..4294967"),
    ("colored_digits", {"severities": [0.5, 100]},
     "colored_digits.severities[1]: expected a percentage in (0, 100), got 100.0"),
    ("colored_digits", {"severities": [1, 1.0]}, "colored_digits.severities: 1 is listed twice"),
    ("colored_digits", {"n_valid": 3}, "colored_digits.n_valid: expected an integer in 10..10000000, got 3"),
    ("methods", {"multilabel": ["erm", "lff"]}, "methods.multilabel: 'lff' cannot train a multi-label"),
    ("methods", {"debias": ["erm", "sgd"]}, "methods.debias: unknown method 'sgd' (registered in"),
    ("methods", {"fair": ["fairbatch", "fairbatch"]}, "methods.fair: fairbatch is listed twice"),
    ("attributes", {"targets": ["Smiling", "Smiling"]}, "attributes.targets: Smiling is listed twice"),
    ("faces_bias", {"bias": "Smiling"}, "faces_bias.bias: 'Smiling' is also the target"),
])
def test_out_of_range_values_name_key_and_range(tmp_path, group, values, message):
    with pytest.raises(DebiaslabError, match=f"^{re.escape(str(tmp_path))}.*: {re.escape(message)}"):
        load_params(group, path=write(tmp_path, {group: values}))


@pytest.mark.parametrize(("group", "key", "limit"), [
    ("synthesize", "n_images", 10_000_000),
    ("evaluate", "n_boot", 10_000),
    ("evaluate", "kl_bins", 1_000),
    ("latents", "n", 10_000_000),
    ("oracle", "n_images", 10_000_000),
    ("inversion", "n_images", 10_000_000),
    ("fair_cells", "per_cell", 10_000_000),
    ("colored_digits", "n_train", 10_000_000),
    ("train", "width", 1_024),
    ("gan", "latent_dim", 4_096),
])
def test_counts_that_size_allocations_have_a_stated_limit(tmp_path, group, key, limit):
    path = write(tmp_path, {group: {key: limit * 1000}})
    with pytest.raises(DebiaslabError, match=rf"{group}\.{key}: expected an integer in \d+\.\.{limit}, "
                                             rf"got {limit * 1000}$"):
        load_params(group, path=path)
    load_params(group, path=write(tmp_path, {group: {key: limit}}))  # the limit itself is fine


def test_ranges_hold_for_groups_built_in_code():
    with pytest.raises(ValueError, match="lr: expected a positive number, got nan"):
        TrainParams(lr=float("nan"))
    with pytest.raises(ValueError, match="n_boot"):
        EvaluateParams(n_boot=0)


# --------------------------------------------------------------------------- hparams
def test_hparams_are_checked_at_load_time(tmp_path):
    def load(hparams):
        return load_params("hparams", path=write(tmp_path, {"hparams": hparams}))["hparams"]

    cases = [
        ({"lfff": {"q": 0.5}},
         "hparams.lfff: unknown method (expected one of: adversarial, disent, drfairness, erm"),
        ({"lff": {"qq": 0.5}}, "hparams.lff.qq: unknown key (expected one of: q, ema_alpha)"),
        ({"erm": {"lr": 0.1}}, "hparams.erm.lr: unknown key (erm has no hyperparameters)"),
        ({"lff": {"q": "abc"}}, "hparams.lff.q: expected a number, got 'abc'"),
        ({"lff": {"q": 1.5}}, "hparams.lff.q: expected a number in (0, 1], got 1.5"),
        ({"drfairness": {"lr": float("nan")}}, "hparams.drfairness.lr: expected a finite number, got nan"),
        ({"fairbatch": {"fairness": "eqop"}},
         "hparams.fairbatch.fairness: expected one of 'eo', 'eqopp', 'dp', got 'eqop'"),
        ({"fairbatch_step": {"val_batch": 2.5}},
         "hparams.fairbatch_step.val_batch: expected an integer, got 2.5"),
        ({"adversarial": {"hidden": 0}},
         "hparams.adversarial.hidden: expected an integer in 1..65536, got 0"),
        ({"disent": [1]}, "hparams.disent: expected a mapping of hyperparameters, got [1]"),
        ({"drfairness": {"update_iter": 0}},
         "hparams.drfairness.update_iter: expected an integer in 1..65536, got 0"),
        ({"drfairness": {"ema_decay": 1}},
         "hparams.drfairness.ema_decay: expected a number in [0, 1), got 1"),
    ]
    for hparams, message in cases:
        with pytest.raises(DebiaslabError, match=re.escape(message)):
            load(hparams)
    # numbers stay floats, as before: checkpoints store them (128.0 and 128 pickle differently)
    assert load({"adversarial": {"hidden": 128, "grl_weight": 1}, "fairbatch": {"fairness": "dp"},
                 "lff": {"q": "1e-1"}}) == {
        "adversarial": {"hidden": 128.0, "grl_weight": 1.0}, "fairbatch": {"fairness": "dp"},
        "lff": {"q": 0.1}}


def test_every_hyperparameter_has_a_rule_its_default_obeys(tmp_path):
    for method, defaults in METHOD_HPARAMS.items():
        for key, default in defaults.items():
            assert key in (HPARAM_CHOICES if isinstance(default, str) else HPARAM_BOUNDS), (method, key)
    assert load_params("hparams", path=write(tmp_path, {"hparams": METHOD_HPARAMS}))


# --------------------------------------------------------------------------- the file itself
@pytest.mark.parametrize(("text", "message"), [
    ("train:\n  epochs: 3\n  lr: [1\n",
     r"params\.yaml line 4, column 1: not valid YAML: expected ',' or ']'"),
    ("train:\n  epochs: 3\n lr: 1\n", r"params\.yaml line 3, column 2: not valid YAML"),
    ("train:\n  epochs: 3\n  epochs: 4\n",
     r"params\.yaml line 3, column 3: not valid YAML: duplicate key 'epochs' \(first on line 2\)"),
    ("train: {}\nevaluate: {}\ntrain: {}\n", r"line 3, column 1: not valid YAML: duplicate key 'train'"),
    (b"train:\n  device: caf\xe9\n",
     r"params\.yaml line 2: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"),
    ("", r"params\.yaml: no parameters \(the file is empty or only comments\)"),
    ("# nothing yet\n", r"params\.yaml: no parameters"),
    ("- train\n- evaluate\n",
     r"params\.yaml: expected a mapping of parameter groups such as 'train:', got a list"),
])
def test_unreadable_params_files_are_one_line_with_a_position(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DebiaslabError, match=message) as err:
        read_params_file(path)
    assert "\n" not in str(err.value)


def test_params_and_stage_args_import_no_torch_or_numpy():
    code = ("import sys, debiaslab.params, debiaslab.stage_args; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
