import os
import socket
import stat
import warnings

import larq_irnet  # noqa: F401  (Keras 2, the registered quantizers)
from larq_irnet.io import atomic_path, atomic_write, file_lock, stale_temporaries
from larq_irnet.legacy_h5 import loadable_h5_model

import larq as lq
import numpy as np
import pytest
import tensorflow as tf


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_written_file_has_the_mode_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "summary.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not a temporary file's 0600


def test_nested_writers_get_their_own_temporary_files(tmp_path):
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second
        assert first.parent == tmp_path and first.suffix == ".json"
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a.json").read_text() == "1"  # the outer writer finished last
    assert os.listdir(tmp_path) == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("trained weights")
    with pytest.raises(RuntimeError), atomic_path(path) as temp:
        temp.write_text("half a file")
        raise RuntimeError("disk full")
    assert path.read_text() == "trained weights"
    assert os.listdir(tmp_path) == ["model.h5"]


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        atomic_write(tmp_path / "missing" / "x.json", "{}")


def test_file_lock_excludes_a_second_holder_until_released(tmp_path):
    path = tmp_path / "run.lock"
    with file_lock(path):
        assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
        # flock locks belong to open files: a second open in this process is excluded too.
        with pytest.raises(BlockingIOError, match=rf"run.lock is locked .*\(pid {os.getpid()} "):
            with file_lock(path, wait=False):
                pass
    with file_lock(path, wait=False):
        pass


def test_stale_temporaries_are_those_of_atomic_path(tmp_path):
    path = tmp_path / "model.h5"
    with atomic_path(path) as temp:
        assert stale_temporaries(path) == [temp]
        assert stale_temporaries(tmp_path / "summary.json") == []
    assert stale_temporaries(path) == []
    (tmp_path / ".model.not-hex-at-all.h5").write_text("")
    assert stale_temporaries(path) == []


def _saved_h5(path, **conv_kwargs):
    """A one-conv model saved as .h5 (Keras' legacy-format warning silenced)."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((6, 6, 2))
    conv = lq.layers.QuantConv2D(3, 3, name="conv", **conv_kwargs)
    model = tf.keras.Model(inputs, conv(inputs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return model


@lq.utils.register_keras_custom_object  # registered by name, as larq-zoo's functions are
def ones_initializer_fn(shape, dtype=None):
    return tf.ones(shape, dtype)


@lq.utils.register_keras_custom_object
def double_fn(x):
    return 2.0 * x


def test_loadable_h5_model_reads_plain_function_initializers_by_name(tmp_path):
    model = _saved_h5(tmp_path / "init.h5", kernel_initializer=ones_initializer_fn)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype(np.float32)
    with loadable_h5_model(tmp_path / "init.h5") as path:
        assert path != tmp_path / "init.h5"  # a rewritten copy
        loaded = tf.keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    config = loaded.get_layer("conv").kernel_initializer.get_config()
    assert config == {"function_name": "ones_initializer_fn"}
    _saved_h5(tmp_path / "plain.h5", kernel_quantizer="ste_sign")
    with loadable_h5_model(tmp_path / "plain.h5") as path:
        assert path == tmp_path / "plain.h5"  # nothing to rewrite: the file itself


@pytest.mark.parametrize(
    "argument,function,name",
    [
        ("kernel_quantizer", None, "xnor_weight_scale"),  # larq-zoo's XNORNet
        ("activation", double_fn, "double_fn"),
    ],
)
def test_loadable_h5_model_refuses_other_plain_functions_naming_them(
    tmp_path, argument, function, name
):
    if function is None:
        from larq_zoo.literature.xnornet import xnor_weight_scale as function
    # An initializer beside it is still read by name: only the other function is refused.
    _saved_h5(tmp_path / "model.h5", kernel_initializer=ones_initializer_fn, **{argument: function})
    message = (
        rf"model.h5: layer 'conv' has `{argument}` saved as the plain function '{name}', "
        rf"which Keras' .h5 loader cannot rebuild .* Register '{name}'"
    )
    with pytest.raises(ValueError, match=message):
        with loadable_h5_model(tmp_path / "model.h5"):
            pass
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]
