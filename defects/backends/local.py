"""``local``: SageMaker local mode (SDK v3 ``ModelTrainer``, ``Mode.LOCAL_CONTAINER``) in the
TensorFlow training container, with the data in the embedded S3 server.

Around the SDK this backend adds what local mode lacks: a fresh ``local_container_root``
per job whose folder name is the compose project name (so jobs never share containers or
stale model files), a network of the job's own and no real credentials in the compose file
(:mod:`.compose`), ``compose down`` after every job (passed, failed or interrupted),
ownership of the container's root-owned files handed back to the user, and archives packed
exactly as the ``process`` backend packs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from defects import signals
from defects.backends import compose, modeltrainer
from defects.backends.artifacts import training_failed, upload_results
from defects.backends.base import Backend, Check, TrainingJob, TrainingResult
from defects.backends.watchdog import Watchdog
from defects.console import log
from defects.console.live import JobOutput, LineBuffer
from defects.jobs import containers
from defects.jobs.records import container_tree, refuse_links
from defects.storage import S3Uri, Storage
from defects.storage.s3 import require_space, s3_errors
from defects.training import contract

if TYPE_CHECKING:
    from defects.storage import Layout

BUILD_COMMAND = "scripts/start-docker && scripts/build-standin-image"


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def compose_command() -> list[str] | None:
    """``docker compose`` when it is v2 or newer, else ``docker-compose``, as the SDK picks."""
    if shutil.which("docker"):
        version = _run(["docker", "compose", "version"])
        if version.returncode == 0 and re.search(r"version\s+v?([2-9]|\d\d)", version.stdout):
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def project_name(root: Path) -> str:
    # Compose names the project after the folder of the compose file, like this.
    return re.sub(r"[^-_a-z0-9]", "", root.name.lower())


class _Tee:
    """Copy what the SDK prints (the container's log) to the job log as it comes, and line
    by line to the job's rendered output."""

    def __init__(self, log_file: IO[str], output: LineBuffer) -> None:
        self._log_file = log_file
        self._output = output

    def write(self, text: str) -> int:
        self._log_file.write(text)
        self._output.write(text)
        return len(text)

    def flush(self) -> None:
        self._log_file.flush()

    def isatty(self) -> bool:
        return False


class LocalBackend(Backend):
    name = "local"

    @property
    def instance_type(self) -> str:
        if self.settings.instance_type:
            return self.settings.instance_type
        return "local_gpu" if shutil.which("nvidia-smi") else "local_cpu"

    @property
    def image(self) -> str:
        return self.settings.training_image or modeltrainer.official_image(
            self.settings.region, self.instance_type
        )

    def checks(self) -> list[Check]:
        sdk = modeltrainer.sdk_check()
        if not sdk.ok:
            return [sdk]
        if not shutil.which("docker"):
            return [
                Check(
                    "docker",
                    False,
                    "the docker command is not installed",
                    hint=f"Install Docker (on Debian: {BUILD_COMMAND}).",
                )
            ]
        info = _run(["docker", "info", "--format", "{{json .Runtimes}}"])
        if info.returncode != 0:
            return [
                Check(
                    "docker engine",
                    False,
                    "no Docker engine answers",
                    hint="Start Docker (Docker Desktop, or `scripts/start-docker`).",
                )
            ]
        found = [Check("docker engine", True, "running")]
        compose = compose_command()
        found.append(
            Check(
                "compose",
                compose is not None,
                " ".join(compose) if compose else "neither `docker compose` nor `docker-compose`",
                hint="Install the Docker Compose plugin or docker-compose.",
            )
        )
        if self.instance_type == "local_gpu":
            found.append(
                Check(
                    "gpu runtime",
                    "nvidia" in info.stdout,
                    "nvidia runtime present" if "nvidia" in info.stdout else "no nvidia runtime",
                    hint="Install the NVIDIA Container Toolkit, or set "
                    "DEFECTS_INSTANCE_TYPE=local_cpu.",
                )
            )
        image = self.image
        present = _run(["docker", "image", "inspect", image]).returncode == 0
        found.append(
            Check(
                "training image",
                present,
                f"{image} " + ("is present" if present else "is not on this machine"),
                hint=f"Offline, build the stand-in with `{BUILD_COMMAND}` and set "
                "DEFECTS_TRAINING_IMAGE to the tag it prints; with AWS access, log in to ECR "
                "and pull the official image (containers/README.md).",
            )
        )
        return found

    def describe(self, job: TrainingJob, layout: Layout) -> dict[str, Any]:
        return {
            **super().describe(job, layout),
            "mode": "LOCAL_CONTAINER",
            "image": self.image,
            "instance_type": self.instance_type,
        }

    def train(self, job: TrainingJob, store: Storage) -> TrainingResult:
        # The folder name is the compose project name: one per job, never reused. It is
        # cleared first, so never through a symbolic link.
        folder = job.run_dir.resolve()
        root = refuse_links(folder, folder / f"sm-{job.name.lower()}")
        if root.exists():
            self._remove_tree(root)
        root.mkdir(parents=True)
        code = root / "code"
        shutil.copytree(job.source_dir, code)
        log.info("Local mode: image %s, compose project %s.", self.image, project_name(root))
        containers.note(job.run_dir, compose_project=project_name(root))
        # SageMaker's FastFile mode has no local counterpart: say what happens instead.
        log.info(
            "Local mode downloads every channel to this machine before the container "
            "starts (%.1f MB), as SageMaker's File input mode does.",
            sum(job.channel_bytes.values()) / 1e6,
        )
        interrupted: int | None = None
        error: Exception | None = None
        # Outside the container root, which every attempt starts afresh: the same folder as
        # the process backend's, kept for the next attempt.
        checkpoints = container_tree(job.run_dir) / contract.CHECKPOINTS_PATH
        checkpoints.mkdir(parents=True, exist_ok=True)
        # The SDK downloads every channel into the root: refuse what would not fit, first.
        locations = [S3Uri.parse(uri) for uri in job.channels.values()]
        require_space(store.s3, locations, root)
        with job.log_path.open("a") as job_log, JobOutput() as output:
            lines = LineBuffer(output)
            saved_stdout = sys.stdout
            sys.stdout = _Tee(job_log, lines)
            try:
                with (
                    modeltrainer.sdk_environment(store),
                    modeltrainer.exact_job_name(),
                    modeltrainer.ctrl_c_as_exception(),
                    compose.isolated_compose_files(),
                    # If this command dies, its containers do not train on unseen.
                    Watchdog(project_name(root), [root / "docker-compose.yaml"]),
                    # The SDK downloads the channels on the host.
                    s3_errors(f"download the channels of {job.name}"),
                    modeltrainer.checkpoints_mounted(str(checkpoints)),
                ):
                    # The SDK makes its clients when the session is made: inside the
                    # environment. The store's session holds the emulator's dummy
                    # credentials: those are what the SDK writes into the compose file and
                    # the container, never the developer's own.
                    session = modeltrainer.make_session(
                        store.region, store.layout.bucket, store.session
                    )
                    target = modeltrainer.Target(
                        mode="LOCAL_CONTAINER",
                        session=session,
                        image=self.image,
                        instance_type=self.instance_type,
                        source_dir=str(code),
                        local_container_root=str(root),
                    )
                    trainer = modeltrainer.make_trainer(job, target)
                    trainer.train(wait=True, logs=True)
            except modeltrainer.Interrupted as signalled:
                interrupted = signalled.signum
            except RuntimeError as failure:  # compose exited non-zero
                error = failure
            finally:
                sys.stdout = saved_stdout
                lines.flush()
                self._clean_up(root, checkpoints)
                containers.forget(job.run_dir)
        if interrupted is not None:
            raise signals.interruption(interrupted)
        output_dir = root / "artifacts" / "output"
        if error is not None or not (root / "model").is_dir():
            raise training_failed(
                output_dir / "failure", f"The training container failed: {error}", job
            )
        result = self.upload_pending(job, store)
        assert result is not None
        # The SDK's own copies of the same files; the archives above are the record.
        for duplicate in ("artifacts", "compressed_artifacts"):
            self._remove_tree(root / duplicate)
        return result

    def upload_pending(self, job: TrainingJob, store: Storage) -> TrainingResult | None:
        root = job.run_dir.resolve() / f"sm-{job.name.lower()}"
        if not (root / "model").is_dir():
            return None
        data = root / "artifacts" / "output" / "data"
        return upload_results(store, job, root / "model", data, root)

    def _clean_up(self, root: Path, checkpoints: Path) -> None:
        """Remove the job's containers and network, and hand its files back to the user."""
        command = compose_command()
        compose_file = root / "docker-compose.yaml"
        try:
            if command and compose_file.exists():
                # Containers, and the job's own network (see compose.isolate).
                _run(
                    [
                        *command,
                        "-p",
                        project_name(root),
                        "-f",
                        str(compose_file),
                        "down",
                        "--remove-orphans",
                        "--timeout",
                        "5",
                    ],
                    timeout=120,
                )
            # The container writes as root; give the files back so `rm -rf runs/` works.
            if hasattr(os, "getuid") and os.getuid() != 0:
                for folder in (root, checkpoints):
                    self._in_image(folder, "chown", "-R", f"{os.getuid()}:{os.getgid()}", "/mnt")
        finally:
            # It holds the containers' (dummy) credentials: it never outlives the job.
            compose_file.unlink(missing_ok=True)

    def _remove_tree(self, root: Path) -> None:
        if not root.exists():
            return
        try:
            shutil.rmtree(root)
        except PermissionError:
            self._in_image(root.parent, "rm", "-rf", f"/mnt/{root.name}")

    def _in_image(self, folder: Path, *command: str) -> None:
        """Run ``command`` as root in the training image, with ``folder`` at /mnt."""
        _run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                f"{folder}:/mnt",
                "--entrypoint",
                command[0],
                self.image,
                *command[1:],
            ],
            timeout=300,
        )
