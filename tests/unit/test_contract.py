import ast
import json
import sys
from pathlib import Path

import pytest

from defects.training import contract

TRAINING_DIR = Path(contract.__file__).parent


def test_hyperparameters_become_sorted_name_value_pairs() -> None:
    arguments = contract.hyperparameter_arguments({"seed": 1, "batch_size": 8, "augment": True})
    assert arguments == ["--augment", "True", "--batch_size", "8", "--seed", "1"]


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
        "contract",
        "data",
        "metrics",
        "model",
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


def test_the_default_image_size_keeps_the_photos_16_to_9_shape() -> None:
    height, width = contract.image_shape(contract.HYPERPARAMETER_DEFAULTS["image_size"])
    assert width * 9 == height * 16
