"""A tuning job on the sagemaker backend: the exact CreateHyperParameterTuningJob request
(ranges, objective, metric definitions, limits, and the training job definition `defects
train` sends), the estimate before it, and a launch against moto up to the best job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from defects.training.metric_log import METRIC_DEFINITIONS
from tests.cloud.conftest import (
    DEFAULT_BUCKET,
    REGION,
    Cli,
    artifacts_in_s3,
    refuse_connections,
    run_cli,
    s3_contents,
    use_cloud_environment,
)

SEARCH = [
    "--range",
    "learning_rate=0.0005:0.01:log",
    "--range",
    "epochs=1:3",
    "--range",
    "batch_size=8,16",
    "--max-jobs",
    "6",
    "--max-parallel-jobs",
    "2",
    "--strategy",
    "random",
    "--early-stopping",
]
# What the training job and the tuning job share: given to both.
SHARED = [
    "--seed",
    "3",
    "--image-size",
    "40x24",
    "--spot",
    "--max-runtime",
    "3600",
    "--kms-key",
    "alias/defects",
    "--subnet",
    "subnet-0abc",
    "--security-group",
    "sg-0abc",
    "--input-mode",
    "fastfile",
]


def _dry_run(*argv: str) -> tuple[dict[str, Any], str]:
    code, out, err = run_cli(*argv, "--dry-run")
    assert code == 0, err
    request: dict[str, Any] = json.loads(out)
    return request, err


@pytest.fixture(scope="module")
def planned(
    tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    """The tuning request and the training request of the same settings, made offline."""
    root = tmp_path_factory.mktemp("tune-dry-run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        use_cloud_environment(monkeypatch, root)
        refuse_connections(monkeypatch)
        data = ["--data", str(tiny_photos)]
        tuning, err = _dry_run("tune", "--job-name", "planned-tune", *data, *SEARCH, *SHARED)
        training, _ = _dry_run("train", "--job-name", "planned", *data, *SHARED)
        yield tuning, training, err


def test_ranges_keep_their_kind_and_scaling(planned: Any) -> None:
    ranges = planned[0]["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges == {
        "IntegerParameterRanges": [
            {"Name": "epochs", "MinValue": "1", "MaxValue": "3", "ScalingType": "Linear"}
        ],
        "ContinuousParameterRanges": [
            {
                "Name": "learning_rate",
                "MinValue": "0.0005",
                "MaxValue": "0.01",
                "ScalingType": "Logarithmic",
            }
        ],
        "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["8", "16"]}],
    }


def test_objective_limits_strategy_seed_and_early_stopping(planned: Any) -> None:
    config = dict(planned[0]["HyperParameterTuningJobConfig"])
    del config["ParameterRanges"]
    assert config == {
        "Strategy": "Random",
        "ResourceLimits": {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 6},
        "HyperParameterTuningJobObjective": {
            "Type": "Maximize",
            "MetricName": "validation:macro_f1",
        },
        "TrainingJobEarlyStoppingType": "Auto",
        "RandomSeed": 3,
    }


def test_the_metric_definitions_are_the_ones_the_local_search_reads(planned: Any) -> None:
    definitions = planned[0]["TrainingJobDefinition"]["AlgorithmSpecification"]
    assert definitions["MetricDefinitions"] == list(METRIC_DEFINITIONS)


def test_the_trials_are_the_training_job_defects_train_sends(planned: Any) -> None:
    tuning, training, _ = planned
    definition = tuning["TrainingJobDefinition"]
    assert (
        definition["AlgorithmSpecification"]["TrainingImage"]
        == (training["AlgorithmSpecification"]["TrainingImage"])
    )
    for key in (
        "RoleArn",
        "ResourceConfig",
        "OutputDataConfig",
        "StoppingCondition",
        "EnableManagedSpotTraining",
        "VpcConfig",
        "Environment",
    ):
        assert definition[key] == training[key], key
    data = ("train", "validation", "test")

    def channels(request: dict[str, Any]) -> list[Any]:
        found = [c for c in request["InputDataConfig"] if c["ChannelName"] in data]
        return sorted((c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in found)

    assert channels(definition) == channels(training)
    assert definition["OutputDataConfig"]["KmsKeyId"] == "alias/defects"
    assert definition["EnableManagedSpotTraining"] is True


def test_the_fixed_hyperparameters_are_static_and_the_searched_are_not(planned: Any) -> None:
    static = planned[0]["TrainingJobDefinition"]["StaticHyperParameters"]
    assert {"epochs", "learning_rate", "batch_size"}.isdisjoint(static)
    assert (static["image_size"], static["seed"]) == ("40x24", "3")
    # Early stopping on macro-F1 needs it after every epoch.
    assert static["epoch_metrics"] == "true"


def test_the_tuning_estimate_counts_every_trial(planned: Any) -> None:
    err = planned[2]
    assert "estimate: 6 jobs on ml.g4dn.xlarge at $0.736/h" in err
    assert "at most $4.42 (6 jobs x the 1h00m --max-runtime, on demand)" in err


def test_the_train_and_run_dry_runs_show_the_estimate(
    cloud_env: None, no_network: None, tiny_photos: Path
) -> None:
    for command in ("train", "run"):
        _, err = _dry_run(command, "--data", str(tiny_photos), "--spot", "--max-runtime", "3600")
        assert "estimate: 1 job on ml.g4dn.xlarge at $0.736/h" in err, command
        assert "at most $0.74 (1 job x the 1h00m --max-runtime, on demand)" in err, command


def test_the_spot_saving_is_in_the_estimate_of_a_measured_job(
    cloud_env: None, no_network: None, tiny_photos: Path, workdir: Path
) -> None:
    measured = workdir / "runs" / "measured"
    measured.mkdir(parents=True)
    # The tiny photos are 160x90: the automatic size keeps them so.
    settings = {
        "model": "efficientnet_lite0",
        "image_size": "160x90",
        "batch_size": 32,
        "precision": "auto",
    }
    (measured / "job.json").write_text(json.dumps({"hyperparameters": settings}))
    (measured / "metrics.json").write_text(json.dumps({"train_images_per_second": 1.0}))
    _, err = _dry_run("train", "--data", str(tiny_photos), "--spot", "--epochs", "100")
    assert "training time: about" in err
    assert "(assuming the typical 70% saving; spot prices vary)" in err


def test_a_tuning_job_above_the_threshold_is_refused_without_yes(
    aws: None, cli: Cli, tiny_photos: Path
) -> None:
    code, _, err = cli(
        "tune", "--data", str(tiny_photos), *SEARCH, "--job-name", "dear", "--seed", "3"
    )
    assert code == 1
    assert "launch not confirmed" in err
    assert "above the confirmation threshold of $10.00" in err
    assert s3_contents() == {}
    client = boto3.client("sagemaker", region_name=REGION)
    assert client.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []


def test_a_launch_creates_the_tuning_job_and_fetches_the_best_job(
    aws: None, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    # moto names its made-up best training job so.
    artifacts_in_s3(workdir, DEFAULT_BUCKET, "FakeTrainingJobName")
    code, out, err = cli("tune", "--yes", "--data", str(tiny_photos), *SEARCH, "--job-name", "ct")
    assert code == 0, err
    client = boto3.client("sagemaker", region_name=REGION)
    described = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="ct")
    assert described["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxParallelTrainingJobs": 2,
        "MaxNumberOfTrainingJobs": 6,
    }
    best = workdir / "runs" / "ct" / "best"
    assert (best / "model" / "class_names.json").read_text() == '["good", "oil"]'
    assert (best / "curves.png").is_file()
    record = json.loads((workdir / "runs" / "ct" / "tune.json").read_text())
    assert (record["status"], record["details"]["best_training_job"]) == (
        "completed",
        "FakeTrainingJobName",
    )
    assert "best: training job FakeTrainingJobName" in out


def test_the_trials_stream_their_data_as_the_training_job_does(
    planned: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    tuning, training, _ = planned
    trials = tuning["TrainingJobDefinition"]["InputDataConfig"]
    modes = {channel["ChannelName"]: channel.get("InputMode") for channel in trials}
    assert {modes[name] for name in ("train", "validation", "test")} == {"FastFile"}
    assert {
        channel["ChannelName"]: channel.get("InputMode")
        for channel in training["InputDataConfig"]
        if channel["ChannelName"] in modes
    } == modes
