"""larq_irnet.zoo.loading: one loader for run directories, model files, SavedModels and zoo
weights (the converter CLI, load_teacher, the trainer and the lab all call it)."""

import larq_irnet  # noqa: F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet.layers import binarized_weights
from larq_irnet.zoo.loading import RUN_MODEL, load_model, locate_model

import numpy as np
import pytest
from tiny import tiny_model


def test_locate_model_says_what_a_name_points_at(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^{run} is a directory without model.h5 "):
        locate_model(run)
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as error:
        locate_model(missing)
    assert str(error.value) == f"no such run directory, model file or zoo weights: {missing}"
    (run / RUN_MODEL).write_bytes(b"")
    located = locate_model(run)
    assert located.path == run and located.model_path == located.identity_file == run / RUN_MODEL
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    located = locate_model(str(saved))
    assert located.model_path == saved and located.identity_file == saved / "saved_model.pb"
    zoo = locate_model("fashion_mnist")
    assert zoo.zoo_weights == "fashion_mnist" and zoo.path is None and zoo.identity_file is None
    with pytest.raises(FileNotFoundError, match="zoo weights: no_such_weights$"):
        locate_model("no_such_weights")


def test_a_run_directory_and_zoo_weights_load(tmp_path):
    model = tiny_model(input_shape=(28, 28, 1))
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / RUN_MODEL)
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    loaded = load_model(tmp_path / "run")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    teacher = load_model("fashion_mnist", binarization="fp")
    assert teacher.output_shape == (None, 10) and not binarized_weights(teacher)
    assert binarized_weights(load_model("fashion_mnist"))  # the default variant: IR-Net
