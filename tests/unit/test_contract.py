import ast
import json
import sys
from pathlib import Path

import pytest

from defects.training import contract

TRAINING_DIR = Path(contract.__file__).parent


def test_hyperparameters_become_sorted_name_value_pairs() -> None:
    arguments = contract.hyperparameter_arguments({"seed": 1, "batch_size": 8, "augment": True})
    assert arguments == ["--augment", "true", "--batch_size", "8", "--seed", "1"]


def test_job_environment_matches_the_container_layout(tmp_path: Path) -> None:
    environment = contract.job_environment(
        tmp_path, {"train": tmp_path / "input/data/train"}, {"epochs": 2}, num_cpus=2
    )
    assert environment["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert environment["SM_OUTPUT_DATA_DIR"] == str(tmp_path / "output/data")
    assert environment["SM_CHANNEL_TRAIN"] == str(tmp_path / "input/data/train")
    assert json.loads(environment["SM_CHANNELS"]) == ["train"]
    assert json.loads(environment["SM_HPS"]) == {"epochs": 2}
    assert environment["SM_HP_EPOCHS"] == "2"
    assert environment["SM_NUM_GPUS"] == "0"
    assert json.loads(environment["SM_HOSTS"]) == ["algo-1"]
    assert environment["SAGEMAKER_BASE_DIR"] == str(tmp_path)


def test_base_dir_defaults_to_opt_ml() -> None:
    assert contract.base_dir({}) == Path("/opt/ml")
    assert contract.base_dir({"SAGEMAKER_BASE_DIR": "/x"}) == Path("/x")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_entry_point_never_imports_aws_libraries() -> None:
    for path in TRAINING_DIR.glob("*.py"):
        imported = _imported_modules(path)
        assert not imported & {"boto3", "botocore", "sagemaker", "s3transfer"}, path.name


def test_entry_point_uses_only_what_the_training_image_has() -> None:
    # The standard library, the image's packages and the entry point's own modules.
    allowed = set(sys.stdlib_module_names) | {
        "keras",
        "numpy",
        "tensorflow",
        "sklearn",
        "defects",
    }
    for path in TRAINING_DIR.glob("*.py"):
        assert _imported_modules(path) <= allowed, (path.name, _imported_modules(path) - allowed)


@pytest.mark.parametrize(
    ("size", "shape"),
    [(288, (288, 288)), ("288", (288, 288)), ("384x216", (216, 384)), (" 64X32 ", (32, 64))],
)
def test_an_image_size_is_one_side_or_width_x_height(size: object, shape: tuple[int, int]) -> None:
    assert contract.image_shape(size) == shape
    assert contract.image_shape(contract.image_size_text(shape)) == shape


@pytest.mark.parametrize("size", ["", "big", "448x", "x252", "384x216x3", "8", "448x2000"])
def test_a_bad_image_size_says_what_is_expected(size: str) -> None:
    with pytest.raises(ValueError, match=r"image size|between 16 and 1024"):
        contract.image_shape(size)


def test_the_automatic_size_keeps_the_photos_16_to_9_shape() -> None:
    height, width = contract.auto_image_shape([(1920, 1080)])
    assert width * 9 == height * 16


def test_the_training_package_imports_only_itself_of_defects() -> None:
    # What a backend ships is the training package alone: no host module may be needed.
    for path in TRAINING_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("defects"):
                assert (node.module or "").startswith("defects.training"), (path.name, node.module)


def test_every_default_passes_its_own_schema() -> None:
    for spec in contract.HYPERPARAMETERS:
        assert spec.parse(spec.default) == spec.default, spec.name
        assert spec.parse(spec.serialise(spec.default)) == spec.default, spec.name


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", "0", "epochs is 0: it must be >= 1"),
        ("epochs", "2.5", "expected an integer or auto"),
        ("learning_rate", "1", "it must be > 0 and < 1"),
        ("learning_rate", "nan", "expected a number"),
        ("model", "resnet", "expected one of efficientnet_lite0, scratch, article"),
        ("augment", "maybe", "expected true or false"),
        ("image_size", "9", "between 16 and 1024"),
    ],
)
def test_a_bad_value_names_what_is_allowed(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        contract.complete_hyperparameters({name: value})


def test_an_unknown_hyperparameter_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown hyperparameter 'epoch'; known: epochs, "):
        contract.complete_hyperparameters({"epoch": 3})


def test_given_values_are_typed_and_the_rest_default() -> None:
    values = contract.complete_hyperparameters({"epochs": "3", "augment": "no", "seed": None})
    assert values == {**contract.hyperparameter_defaults(), "epochs": 3, "augment": False}


def test_the_sdk_driver_turns_the_serialised_values_into_the_same_arguments() -> None:
    # SageMaker's v3 driver JSON-decodes each value and encodes it again before passing it
    # as --name value: what it passes must be, byte for byte, what the process backend does.
    from sagemaker.train.container_drivers.common.utils import hyperparameters_to_cli_args

    for values in (
        contract.hyperparameter_defaults(),
        contract.complete_hyperparameters(
            {"learning_rate": "1e-05", "augment": False, "image_size": "64", "epochs": 3}
        ),
        contract.complete_hyperparameters({"learning_rate": 0.1 + 0.2, "image_size": "40x24"}),
    ):
        through_sdk = hyperparameters_to_cli_args(contract.serialise(values))
        assert through_sdk == contract.hyperparameter_arguments(values)


def test_the_entry_point_parses_what_the_serialiser_writes() -> None:
    from defects.training.train import parse_hyperparameters

    values = contract.complete_hyperparameters({"augment": False, "image_size": "40x24"})
    parsed = vars(parse_hyperparameters(contract.hyperparameter_arguments(values)))
    assert parsed["augment"] is False
    assert parsed["image_size"] == (24, 40)
    assert {name: parsed[name] for name in values if name != "image_size"} == {
        name: value for name, value in values.items() if name != "image_size"
    }


def test_the_old_name_of_the_network_from_scratch_is_still_understood() -> None:
    spec = contract.HYPERPARAMETER_SCHEMA["model"]
    assert spec.parse("default") == "scratch"
    assert spec.serialise("default") == "scratch"
