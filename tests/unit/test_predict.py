"""predict at scale: files, folders and globs in, one answer per photo out, errors apart."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CLI

CLASSES = ["good", "oil", "scratch", "stain"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained model at 40x24 with its class names, as a job leaves them."""
    import keras

    inputs = keras.Input((24, 40, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(pooled))
    folder = tmp_path_factory.mktemp("job") / "model"
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "class_names.json").write_text(json.dumps(CLASSES))
    return folder


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "a-long-folder-name-that-a-narrow-table-would-cut" / "photos"
    (root / "nested").mkdir(parents=True)
    for index in range(3):
        pixels = np.full((60, 100, 3), 60 * index, np.uint8)
        Image.fromarray(pixels).save(root / f"photo{index}.jpg")
    Image.fromarray(np.full((60, 100, 4), 90, np.uint8)).save(root / "nested" / "clear.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 64)
    (root / "notes.txt").write_text("not a photo")
    return root


def test_piped_output_is_csv_with_full_paths(model_dir: Path, photos: Path, cli: CLI) -> None:
    code, out, _ = cli("predict", str(model_dir), str(photos / "photo0.jpg"))
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0
    assert rows[0] == ["path", "class", *CLASSES]
    assert rows[1][0] == str(photos / "photo0.jpg")
    assert rows[1][1] in CLASSES
    assert sum(float(value) for value in rows[1][2:]) == pytest.approx(1.0, abs=1e-5)


def test_a_folder_gives_its_images_recursively_and_failures_only_on_stderr(
    model_dir: Path, photos: Path, cli: CLI
) -> None:
    code, out, err = cli("predict", str(model_dir), str(photos))
    paths = [row[0] for row in csv.reader(io.StringIO(out))][1:]
    assert paths == [
        str(photos / "nested" / "clear.png"),
        str(photos / "photo0.jpg"),
        str(photos / "photo1.jpg"),
        str(photos / "photo2.jpg"),
    ]
    assert code == 1
    assert err.count("broken.jpg") == 1
    assert f"skipped {photos / 'broken.jpg'}: not an image" in err
    assert "broken" not in out


def test_a_glob_is_expanded_and_each_file_answered_once(
    model_dir: Path, photos: Path, cli: CLI
) -> None:
    code, out, err = cli(
        "predict",
        str(model_dir),
        str(photos / "photo*.jpg"),
        str(photos / "photo1.jpg"),
        "--output",
        "jsonl",
    )
    answers = [json.loads(line) for line in out.splitlines()]
    assert (code, err) == (0, "")
    assert [Path(answer["path"]).name for answer in answers] == [
        "photo0.jpg",
        "photo1.jpg",
        "photo2.jpg",
    ]
    assert set(answers[0]["probabilities"]) == set(CLASSES)


def test_json_is_jsonl(model_dir: Path, photos: Path, cli: CLI) -> None:
    code, out, _ = cli("predict", str(model_dir), str(photos / "photo2.jpg"), "--json")
    assert code == 0
    assert json.loads(out)["path"] == str(photos / "photo2.jpg")


def test_an_unusable_input_is_reported_once_with_its_reason(
    model_dir: Path, photos: Path, cli: CLI
) -> None:
    code, out, err = cli(
        "predict", str(model_dir), str(photos / "notes.txt"), str(photos / "none*.jpg")
    )
    assert code == 1
    assert out == "path,class,good,oil,scratch,stain\n"
    assert err.splitlines() == [
        f"skipped {photos / 'none*.jpg'}: the pattern matches no image",
        f"skipped {photos / 'notes.txt'}: unsupported file type .txt",
    ]


def test_the_table_keeps_long_paths_whole(model_dir: Path, photos: Path, cli: CLI) -> None:
    code, out, _ = cli("predict", str(model_dir), str(photos / "photo0.jpg"), "--output", "table")
    assert code == 0
    assert "…" not in out
    assert "a-long-folder-name-that-a-narrow-table-would-cut" in "".join(
        line.strip(" │┃") for line in out.splitlines()
    )


def test_the_api_takes_strings_and_batches_the_photos(
    model_dir: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import defects
    from defects.inference.loading import load_model

    loaded = load_model(str(model_dir))
    calls: list[int] = []
    original = loaded.model.predict_on_batch

    def counting(batch: object) -> object:
        calls.append(int(batch.shape[0]))  # type: ignore[attr-defined]
        return original(batch)

    monkeypatch.setattr(loaded.model, "predict_on_batch", counting)
    predictions = defects.predict(loaded, [str(photos)], batch_size=3)
    assert [p.path.name for p in predictions] == [
        "broken.jpg",
        "clear.png",
        "photo0.jpg",
        "photo1.jpg",
        "photo2.jpg",
    ]
    assert [bool(p.error) for p in predictions] == [True, False, False, False, False]
    assert calls == [3, 1]


def test_webp_tiff_and_heic_photos_are_answered_as_their_png_would_be(
    model_dir: Path, tmp_path: Path
) -> None:
    from pillow_heif import register_heif_opener

    import defects

    register_heif_opener()
    rng = np.random.default_rng(4)
    picture = Image.fromarray(rng.integers(0, 255, (60, 100, 3), dtype=np.uint8))
    picture.save(tmp_path / "shot.png")
    picture.save(tmp_path / "shot.webp", lossless=True)
    picture.save(tmp_path / "shot.tiff")
    picture.save(tmp_path / "shot.heic", quality=95)
    answers = {p.path.suffix: p for p in defects.predict(str(model_dir), [str(tmp_path)])}
    assert set(answers) == {".png", ".webp", ".tiff", ".heic"}
    # Lossless formats give the PNG's answer exactly; HEIC is lossy, so close to it.
    for suffix, tolerance in ((".webp", 1e-6), (".tiff", 1e-6), (".heic", 0.01)):
        assert answers[suffix].error == ""
        for name, value in answers[".png"].probabilities.items():
            assert answers[suffix].probabilities[name] == pytest.approx(value, abs=tolerance)


@pytest.mark.parametrize(
    "names", ['["good", "oil"]', '{"good": 0}', "not json", '["good", "oil", "scratch", 4]']
)
def test_class_names_that_do_not_fit_the_model_are_a_clear_error(
    model_dir: Path, photos: Path, cli: CLI, tmp_path: Path, names: str
) -> None:
    import shutil

    damaged = tmp_path / "model"
    shutil.copytree(model_dir, damaged)
    (damaged / "class_names.json").write_text(names)
    code, _, err = cli("predict", str(damaged), str(photos / "photo0.jpg"))
    assert code == 1
    assert "error: the model cannot be loaded" in err
    assert "does not hold the model's 4 class names" in " ".join(err.split())
    assert "Traceback" not in err


def test_a_truncated_model_file_is_a_clear_error(
    model_dir: Path, photos: Path, cli: CLI, tmp_path: Path
) -> None:
    import shutil

    damaged = tmp_path / "model"
    shutil.copytree(model_dir, damaged)
    model = damaged / "model.keras"
    model.write_bytes(model.read_bytes()[:200])
    code, _, err = cli("predict", str(damaged), str(photos / "photo0.jpg"))
    assert code == 1
    assert "error: the model cannot be loaded" in err
    assert "model.keras cannot be loaded" in " ".join(err.split())
    assert "Traceback" not in err


def test_the_number_of_answers_is_known_before_the_first(model_dir: Path, photos: Path) -> None:
    from defects.inference.loading import load_model
    from defects.inference.prediction import iter_predictions

    totals: list[int] = []
    answers = 0
    for _ in iter_predictions(
        load_model(model_dir), [str(photos), "missing.jpg"], 2, totals.append
    ):
        answers += 1
        assert totals == [6]  # Five photos and a missing file, each answered once.
    assert answers == 6


def test_paths_and_names_with_brackets_are_printed_as_they_are(
    model_dir: Path, tmp_path: Path, cli: CLI
) -> None:
    # "[/]" closes a markup tag: printed as markup, it broke the table.
    folder = tmp_path / "shots[" / "]"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((60, 100, 3), 90, np.uint8)).save(folder / "[bold]a.jpg")
    (folder / "[red]broken.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 64)
    code, out, err = cli("predict", str(model_dir), str(tmp_path / "shots["), "--output", "table")
    assert code == 1, err
    assert "[bold]a.jpg" in out.replace("\n", "").replace("│", "").replace(" ", "")
    assert "skipped" in err and "[red]broken.jpg" in err
    assert "Traceback" not in err


def test_photos_are_converted_a_few_batches_at_a_time_and_answered_in_order(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BMPs are converted in memory: a folder of thousands must not be held whole.
    from defects.inference import prediction
    from defects.inference.loading import load_model

    count = 60
    for index in range(count):
        pixels = np.full((24, 40, 3), 4 * index, np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index:02}.bmp")
    (tmp_path / "05.bmp").write_bytes(b"BM broken")
    (tmp_path / "41.bmp").write_bytes(b"BM broken")
    screened: list[str] = []
    screen = prediction._screen
    monkeypatch.setattr(prediction, "BATCHES_PER_CHUNK", 2)
    monkeypatch.setattr(
        prediction, "_screen", lambda path: screened.append(path.name) or screen(path)
    )

    answers = prediction.iter_predictions(load_model(model_dir), tmp_path, batch_size=2)
    first = next(answers)
    assert first.path.name == "00.bmp" and first.label in CLASSES
    assert len(screened) < count / 2, screened
    rest = list(answers)
    assert [answer.path.name for answer in rest] == [f"{index:02}.bmp" for index in range(1, count)]
    assert [answer.path.name for answer in rest if answer.error] == ["05.bmp", "41.bmp"]
    assert sorted(screened) == [f"{index:02}.bmp" for index in range(count)]


# A model the entry point of the version before the pretrained network saved (`train.py
# --model default --epochs 1 --image_size 24` on six synthetic photos a class): the network
# from scratch, then named `default`, with its eight-orientation mean; model.keras and
# class_names.json as a job leaves them.
EARLIER_MODEL = Path(__file__).parent.parent / "fixtures" / "model-before-pretrained"


def test_a_model_saved_before_the_pretrained_network_still_predicts_and_evaluates(
    cli: CLI, tiny_photos: Path, tmp_path: Path
) -> None:
    from defects.inference.evaluation import evaluate

    model = EARLIER_MODEL / "model.keras"
    photo = sorted((tiny_photos / "stain").iterdir())[0]
    code, out, err = cli("predict", str(model), str(photo), "--json")
    assert code == 0, err
    (answer,) = [json.loads(line) for line in out.splitlines()]
    assert answer["class"] in CLASSES
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    scored = evaluate(model, data=tiny_photos, out_dir=tmp_path / "evaluation")
    assert scored.metrics["count"] == 24
    assert sorted(p.name for p in EARLIER_MODEL.iterdir()) == ["class_names.json", "model.keras"]
