"""TrainConfig: flags, files and SageMaker-style strings become one validated config."""

import json
from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig
from training.config_loading import config_from_mapping, parse_config


def test_parse_config_defaults_train_on_the_bundled_digits() -> None:
    config = parse_config([])

    assert config == TrainConfig()
    assert config.data == "examples/data/digits.csv"
    assert config.target == "label"


def test_parse_config_flags_are_converted_to_field_types() -> None:
    config = parse_config(
        ["--epochs", "7", "--lr", "0.01", "--nesterov", "--input-shape", "1,8,8", "--exclude", "id,email"]
    )

    assert config.epochs == 7
    assert config.lr == 0.01
    assert config.nesterov is True
    assert config.input_shape == (1, 8, 8)
    assert config.exclude == ("id", "email")


def test_parse_config_flags_override_the_config_file(tmp_path: Path) -> None:
    settings = tmp_path / "job.yaml"
    settings.write_text("optimizer: sgd\nepochs: 12\nbatch-size: 32\n")

    config = parse_config(["--config", str(settings), "--epochs", "3"])

    assert (config.optimizer, config.epochs, config.batch_size) == ("sgd", 3, 32)


def test_parse_config_reads_json_files(tmp_path: Path) -> None:
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"model": "cnn", "input_shape": [1, 8, 8], "dropout": 0.2}))

    config = parse_config(["--config", str(settings)])

    assert (config.model, config.input_shape, config.dropout) == ("cnn", (1, 8, 8), 0.2)


def test_config_from_mapping_accepts_sagemaker_string_values() -> None:
    hyperparameters = {"epochs": "5", "lr": "3e-4", "resume": "true", "input-shape": "[1, 8, 8]", "model": "cnn"}

    config = config_from_mapping(hyperparameters)

    assert (config.epochs, config.lr, config.resume, config.input_shape) == (5, 3e-4, True, (1, 8, 8))


def test_config_from_mapping_refuses_unknown_settings_and_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'learning_rate'.*\blr\b"):
        config_from_mapping({"learning_rate": "0.1"})


@pytest.mark.parametrize(
    ("name", "closest"), [("epocs", "epochs"), ("hidden-sise", "hidden_size"), ("weightdecay", "weight_decay")]
)
def test_config_from_mapping_names_the_closest_setting_to_a_misspelt_one(name: str, closest: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_mapping({name: "1"})

    assert str(refused.value).startswith(f"unknown setting {name!r} (did you mean {closest!r}?); known settings: ")


def test_config_refuses_an_unknown_optimizer_naming_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"--optimizer: 'lbfgs' is not one of sgd, adagrad, rmsprop, adam, adamw"):
        parse_config(["--optimizer", "lbfgs"])


def test_config_refuses_a_value_of_the_wrong_type() -> None:
    with pytest.raises(ConfigError, match=r"--epochs: expected a whole number, got 'ten'"):
        config_from_mapping({"epochs": "ten"})


def test_config_refuses_a_fractional_whole_number() -> None:
    with pytest.raises(ConfigError, match=r"--batch-size: expected a whole number, got '3.5'"):
        config_from_mapping({"batch_size": "3.5"})


def test_config_refuses_cnn_without_an_input_shape() -> None:
    with pytest.raises(ConfigError, match="--input-shape"):
        parse_config(["--model", "cnn"])


def test_config_refuses_shifts_without_an_image_shape_before_any_data_is_read() -> None:
    with pytest.raises(ConfigError, match="--shift-pixels needs --input-shape"):
        TrainConfig(shift_pixels=1)
    with pytest.raises(ConfigError, match="--shift-pixels needs --input-shape"):
        parse_config(["--shift-pixels", "1", "--data", "no/such/file.csv"])


def test_config_refuses_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        parse_config(["--config", str(tmp_path / "absent.yaml")])


def test_config_to_dict_is_json_ready() -> None:
    config = parse_config(["--input-shape", "1,8,8"])

    assert json.loads(json.dumps(config.to_dict()))["input_shape"] == [1, 8, 8]


def test_config_checkpoint_location_defaults_beside_the_bundle() -> None:
    assert parse_config(["--out", "build/bundle/"]).checkpoint_location == "build/bundle.checkpoints"
    assert parse_config(["--checkpoint-dir", "/ckpt"]).checkpoint_location == "/ckpt"


def test_config_input_shape_accepts_the_x_notation_without_touching_column_names() -> None:
    config = parse_config(["--input-shape", "1x8x8", "--exclude", "index,max_x"])

    assert config.input_shape == (1, 8, 8)
    assert config.exclude == ("index", "max_x")
