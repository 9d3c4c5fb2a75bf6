"""Every mistake a reader has made, or plausibly makes, gets a clear error before training.

One row per bad input: what was called, the exception type, and a fragment of
the message (which must name the argument and what was expected).  Add a row
for every bad input anyone reports.  The rows marked ``# issue`` are the ones
found by trying the helpers as a new user would; each used to train silently
on nonsense or to fail deep inside Keras or autograph with an unrelated message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import (
    data,
    diagnostics,
    digits,
    ema,
    finetune,
    gan,
    gradients,
    loops,
    models,
    optim,
    pipelines,
    profiling,
    schedules,
    sequences,
)
from tutorial_helpers.accumulation import make_accumulating_train_step
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.losses import BinaryFocalLoss, WeightedMeanSquaredError
from tutorial_helpers.metrics import BinaryF1
from tutorial_helpers.mixed_precision import make_scaled_train_step, policy
from tutorial_helpers.multi_output import make_multi_output_train_step
from tutorial_helpers.saving import Standardize, predict_in_new_process
from tutorial_helpers.trainer import Trainer

NAN = float("nan")
X = np.random.default_rng(0).random((40, 3)).astype(np.float32)
Y = X.sum(axis=1, keepdims=True)


def mlp(outputs: int = 1) -> keras.Model:
    return models.make_mlp(3, (4,), outputs=outputs, seed=0)


def _two_output_model() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, {"a": keras.layers.Dense(1, name="a")(inputs),
                                "b": keras.layers.Dense(1, name="b")(inputs)})


def train(train_data=(X, Y), **kwargs) -> Callable[[], object]:
    options = dict(optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError(),
                   epochs=1, verbose=0)
    if not isinstance(train_data, tf.data.Dataset):
        options["batch_size"] = 8
    options.update(kwargs)
    model = options.pop("model", None) or mlp()
    return lambda: loops.train(model, train_data, **options)


def trainer(fit: dict | None = None, **kwargs) -> Callable[[], object]:
    options = dict(optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError())
    options.update(kwargs)
    fit_options = dict(train_data=(X, Y), epochs=1, batch_size=8)
    fit_options.update(fit or {})

    def run():
        model = options.pop("model", None) or mlp()
        return Trainer(model, **options).fit(fit_options.pop("train_data"), **fit_options)

    return run


def dataset(batch: int | None = 8, y=Y):
    ds = tf.data.Dataset.from_tensor_slices((X, y))
    return ds if batch is None else ds.batch(batch)


def gan_compile(**kwargs) -> Callable[[], object]:
    def run():
        model = gan.GAN(gan.build_discriminator(), gan.build_generator(8), latent_dim=8)
        options = dict(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
                       loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
        options.update(kwargs)
        model.compile(**options)

    return run


def focal_on_labels(labels) -> Callable[[], object]:
    y = np.array(labels, dtype=np.float32)[:, None]
    return lambda: BinaryFocalLoss()(y, np.full_like(y, 0.5))


def nan_validation_with_stopper() -> object:
    x_val = X.copy()
    x_val[3] = NAN
    return Trainer(mlp(), optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError()).fit(
        (X, Y), epochs=3, batch_size=8, validation_data=(x_val, Y), early_stopping=EarlyStopper(patience=1)
    )


CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # ---------------------------------------------------------------- loops.train
    ("metrics as strings", train(metrics=["mae"]), TypeError,  # issue
     r"metrics must hold keras.metrics.Metric objects such as keras.metrics.MeanAbsoluteError\(\), "
     r"got the string 'mae'"),
    ("one metric, not a list", train(metrics=keras.metrics.MeanAbsoluteError()), TypeError,
     "metrics must be a list"),
    ("y with two columns for one output", train((X, np.hstack([Y, Y]))), ValueError,  # issue
     r"train_data: y has shape \(40, 2\) but the model outputs shape \(None, 1\)"),
    ("(n,) targets with a hand-written loss", train((X, Y[:, 0]), loss_fn=lambda y, p, sample_weight=None:
                                                    tf.reduce_mean((y - p) ** 2)), ValueError,
     r"y has shape \(40,\) but the model outputs shape \(None, 1\)"),
    ("validation y of the wrong shape", train(validation_data=(X, np.hstack([Y, Y]))), ValueError,
     r"validation_data: y has shape \(40, 2\)"),
    ("one-hot targets with a sparse loss", train((X, np.eye(3, dtype=np.float32)[np.arange(40) % 3]),
                                                  model=mlp(3),
                                                  loss_fn=keras.losses.SparseCategoricalCrossentropy(
                                                      from_logits=True)), ValueError,
     r"a sparse loss takes class indices of shape \(n,\) or \(n, 1\)"),
    ("loss given as a string", train(loss_fn="mse"), TypeError,
     "loss_fn must be a loss object such as keras.losses.MeanSquaredError"),
    ("optimizer given as a string", train(optimizer="adam"), TypeError,
     "optimizer must be a keras.optimizers.Optimizer"),
    ("verbose=True", train(verbose=True), ValueError, "verbose must be 0 or 1"),
    ("a batched dataset and batch_size", train(dataset(), batch_size=4), ValueError,
     "already a tf.data.Dataset"),
    ("an unbatched dataset", train(dataset(None)), ValueError, "train_data must be batched"),
    ("an unbatched dataset of equal parts", train(tf.data.Dataset.from_tensor_slices((X, X))), ValueError,
     r"x has shape \(3,\) but the model takes inputs of shape \(None, 3\)\. Is the dataset batched"),
    ("focal-loss labels 3 and 7", train((X, np.where(Y > 1.5, 7.0, 3.0).astype(np.float32)),
                                        loss_fn=BinaryFocalLoss(from_logits=True)), ValueError,
     r"train_data: y must hold binary labels in \[0, 1\]"),
    ("NaN validation data, no stopper", train(validation_data=(np.full_like(X, NAN), Y)),  # issue
     FloatingPointError, "validation loss became nan at epoch 1"),
    ("x with the wrong number of features", train((X[:, :2], Y)), ValueError,
     r"train_data: x has shape \(40, 2\) but the model takes inputs of shape \(None, 3\)"),
    ("clipnorm NaN", train(clipnorm=NAN), ValueError, "clipnorm must be a positive number, got nan"),
    ("clipvalue and clipnorm", train(clipvalue=1.0, clipnorm=1.0), ValueError,
     "give at most one of global_clipnorm, clipnorm and clipvalue, got clipnorm, clipvalue"),
    ("clipvalue negative", train(clipvalue=-0.5), ValueError,
     "clipvalue must be a positive number, got -0.5"),
    ("evaluate with metric strings", lambda: loops.evaluate(mlp(), (X, Y), batch_size=8,
                                                            loss_fn=keras.losses.MeanSquaredError(),
                                                            metrics=["mae"]), TypeError,
     "got the string 'mae'"),
    # -------------------------------------------------------------------- Trainer
    ("Trainer with metric strings", trainer(metrics=["mae"]), TypeError, "got the string 'mae'"),  # issue
    ("Trainer with loss_fn='mse'", trainer(loss_fn="mse"), TypeError,  # issue
     "loss_fn must be a loss object"),
    ("Trainer, unbatched dataset", trainer(fit=dict(train_data=dataset(None), batch_size=None)),  # issue
     ValueError, "train_data must be batched"),
    ("Trainer, dataset plus batch_size", trainer(fit=dict(train_data=dataset(), batch_size=4)),  # issue
     ValueError, "already a tf.data.Dataset: batch it there, not with batch_size"),
    ("Trainer, y with two columns", trainer(fit=dict(train_data=(X, np.hstack([Y, Y])))), ValueError,
     r"y has shape \(40, 2\) but the model outputs"),
    ("NaN validation data with a stopper", nan_validation_with_stopper, FloatingPointError,  # issue
     "validation loss became nan at epoch 1, step 1"),
    ("a stopper that is not an EarlyStopper",
     trainer(fit=dict(early_stopping=keras.callbacks.EarlyStopping())), TypeError,
     "early_stopping must be an EarlyStopper, got EarlyStopping"),
    ("callbacks not in a list", trainer(fit=dict(callbacks=keras.callbacks.History())), TypeError,
     "callbacks must be a list"),
    ("shuffle_seed as a float", trainer(fit=dict(shuffle_seed=1.5)), TypeError,
     "shuffle_seed must be None or an int"),
    ("resume as a string", trainer(fit=dict(resume="yes", checkpoint_dir="unused")), TypeError,
     "resume must be True or False, got 'yes'"),
    ("resume without a checkpoint_dir", trainer(fit=dict(resume=True)), ValueError,
     "resume=True needs the checkpoint_dir"),
    ("Trainer given a model class", lambda: Trainer(keras.Model, optimizer=keras.optimizers.SGD(),
                                                    loss_fn=keras.losses.MeanSquaredError()), TypeError,
     "model must be a keras.Model"),
    # -------------------------------------------------------------- losses
    ("alpha as np.float32 is fine, alpha 1.5 is not", lambda: BinaryFocalLoss(alpha=np.float32(1.5)),
     ValueError, r"alpha must be a number in \[0, 1\], got 1.5"),
    ("gamma NaN", lambda: BinaryFocalLoss(gamma=NAN), ValueError,  # issue
     r"gamma must be a number in \[0, inf\), got nan"),
    ("from_logits='no'", lambda: BinaryFocalLoss(from_logits="no"), TypeError,  # issue
     "from_logits must be True or False, got 'no'"),
    ("focal labels 3 and 7 called eagerly", focal_on_labels([3, 7]), ValueError,  # issue
     r"y_true must hold binary labels in \[0, 1\]"),
    ("focal label NaN", focal_on_labels([0, NAN]), ValueError, "binary labels"),
    ("weights with NaN", lambda: WeightedMeanSquaredError([NAN]), ValueError,  # issue
     r"weights\[0\] must be a number in \[0, inf\), got nan"),
    ("weights as one number", lambda: WeightedMeanSquaredError(2.0), TypeError,
     "weights must be a list of numbers"),
    # -------------------------------------------------------------- data, stopper, clipping
    ("make_line_data(noise=nan)", lambda: data.make_line_data(noise=NAN), ValueError,  # issue
     "noise must be a finite number >= 0, got nan"),
    ("make_line_data(w='3')", lambda: data.make_line_data(w="3"), TypeError, "w must be a number"),
    ("make_regression_data(noise=-1)", lambda: data.make_regression_data(noise=-1.0), ValueError,
     "noise must be a finite number >= 0"),
    ("train_val_split(val_fraction=nan)", lambda: data.train_val_split(X, Y, val_fraction=NAN), ValueError,
     r"val_fraction must be a number in \(0, 1\)"),
    ("EarlyStopper(min_delta=nan)", lambda: EarlyStopper(min_delta=NAN), ValueError,  # issue
     "min_delta must be a finite number >= 0, got nan"),
    ("EarlyStopper(monitor=None)", lambda: EarlyStopper(monitor=None), TypeError,
     "monitor must be the name of a logged value"),
    ("clip one tensor", lambda: gradients.clip_gradients(tf.ones((3, 2)), global_clipnorm=1.0),  # issue
     TypeError, r"gradients must be a list of tensors .* wrap it in a list"),
    ("record_gradient_norms on arrays", lambda: diagnostics.record_gradient_norms(
        mlp(), keras.optimizers.SGD(0.01), keras.losses.MeanSquaredError(), (X, Y), steps=2), TypeError,
     "dataset must be a batched tf.data.Dataset"),
    ("make_bowl(steepness=0)", lambda: optim.make_bowl(0.0), ValueError,
     "steepness must be a positive number, got 0.0"),
    ("warm-up schedule with NaN peak", lambda: schedules.WarmupCosineDecay(NAN, 10, 100), ValueError,
     "peak_learning_rate must be a finite number >= 0, got nan"),
    # -------------------------------------------------------------- GAN
    ("GAN(real_label=nan)", lambda: gan.GAN(gan.build_discriminator(), gan.build_generator(8), 8,  # issue
                                            real_label=NAN), ValueError,
     r"real_label must be a number in \(0.5, 1\], got nan"),
    ("GAN(real_label=0.3)", lambda: gan.GAN(gan.build_discriminator(), gan.build_generator(8), 8,
                                            real_label=0.3), ValueError,
     r"real_label must be a number in \(0.5, 1\], got 0.3"),
    ("GAN: probability BCE on logits", gan_compile(loss_fn=keras.losses.BinaryCrossentropy()),  # issue
     ValueError, r"the discriminator outputs logits .*BinaryCrossentropy\(from_logits=True\)"),
    ("GAN: loss as a string", gan_compile(loss_fn="binary_crossentropy"), TypeError,
     "GAN.compile\\(\\) needs loss_fn, a loss object"),
    ("judge, labels of the wrong length", lambda: gan.DigitJudge(np.zeros((50, 8, 8, 1)), np.zeros(49)),
     ValueError, r"labels must have shape \(50,\)"),
    # Chapter 13: input pipelines
    ("slow_read(latency=-1)", lambda: pipelines.slow_read(-1.0), ValueError, "latency must be"),
    ("pipeline, x and y of other lengths", lambda: pipelines.naive_pipeline(X, Y[:5], 8, 0.0), ValueError,
     "x and y must have the same length"),
    ("pipeline, batch_size=0", lambda: pipelines.naive_pipeline(X, Y, 0, 0.0), ValueError,
     "batch_size must be >= 1"),
    ("tuned_pipeline(shuffle_seed=1.5)", lambda: pipelines.tuned_pipeline(X, Y, 8, 0.0, shuffle_seed=1.5),
     TypeError, "shuffle_seed must be an int or None"),
    ("tuned_pipeline(parallel_reads=0)", lambda: pipelines.tuned_pipeline(X, Y, 8, 0.0, parallel_reads=0),
     ValueError, "parallel_reads must be >= 1"),
    ("tuned_pipeline(cache='no')", lambda: pipelines.tuned_pipeline(X, Y, 8, 0.0, cache="no"), TypeError,
     "cache must be True or False"),
    ("time_input on arrays", lambda: pipelines.time_input((X, Y), lambda x, y: 0), TypeError,
     "dataset must be a tf.data.Dataset"),
    ("time_input, step not callable", lambda: pipelines.time_input(dataset(), 3), TypeError,
     "step must be callable"),
    ("time_input on an empty dataset", lambda: pipelines.time_input(dataset().take(0), lambda x, y: 0),
     ValueError, "gave no batches"),
    # Chapters 4, 14, 15: metric, mixed precision, accumulation, saving
    ("BinaryF1(threshold=1.5)", lambda: BinaryF1(threshold=1.5), ValueError, "threshold must be"),
    ("BinaryF1(threshold='half')", lambda: BinaryF1(threshold="half"), TypeError, "threshold must be"),
    ("BinaryF1(from_logits='yes')", lambda: BinaryF1(from_logits="yes"), TypeError,
     "from_logits must be True or False"),
    ("policy('float16')", lambda: policy("float16").__enter__(), ValueError, "policy must be one of"),
    ("scaled step, plain optimizer", lambda: make_scaled_train_step(mlp(), keras.optimizers.Adam(),
                                                                    keras.losses.MeanSquaredError()),
     TypeError, r"optimizer must be a keras\.optimizers\.LossScaleOptimizer"),
    ("accumulation steps=0", lambda: make_accumulating_train_step(mlp(), keras.optimizers.SGD(),
                                                                 keras.losses.MeanSquaredError(), 0),
     ValueError, "steps must be >= 1"),
    ("accumulation steps=2.0", lambda: make_accumulating_train_step(mlp(), keras.optimizers.SGD(),
                                                                   keras.losses.MeanSquaredError(), 2.0),
     TypeError, "steps must be an int"),
    ("accumulating twice", lambda: make_accumulating_train_step(
        mlp(), keras.optimizers.SGD(gradient_accumulation_steps=2), keras.losses.MeanSquaredError(), 2),
     ValueError, "accumulating twice would divide twice"),
    ("accumulation, unbuilt model", lambda: make_accumulating_train_step(
        keras.Sequential([keras.layers.Dense(1)]), keras.optimizers.SGD(), keras.losses.MeanSquaredError(),
        2),
     ValueError, "build the model first"),
    ("Standardize(std=0)", lambda: Standardize([0.0], [0.0]), ValueError, "std must be positive"),
    ("Standardize, lengths differ", lambda: Standardize([0.0, 1.0], [1.0]), ValueError,
     "mean and std must have the same length"),
    ("predict_in_new_process, not an export", lambda: predict_in_new_process(Path("/nonexistent"), X),
     FileNotFoundError, "holds no SavedModel"),
    # -------------------------------------------------------------- Chapter 16
    ("load_digit_splits(test_fraction=0)", lambda: digits.load_digit_splits(test_fraction=0.0), ValueError,
     r"test_fraction must be a number in \(0, 1\)"),
    ("load_digit_splits, nothing left to train", lambda: digits.load_digit_splits(0.6, 0.4), ValueError,
     "must leave data to train on"),
    ("confusion_matrix with probabilities",
     lambda: digits.confusion_matrix(np.array([0, 1]), np.array([0.2, 0.9])), ValueError,
     r"y_pred must hold class indices 0\.\.9"),
    ("predict_names on one image",
     lambda: digits.predict_names(digits.build_digit_cnn(), np.zeros((8, 8, 1))), ValueError,
     r"images must have shape \(n, 8, 8, 1\)"),
    ("multi-output step, a loss missing", lambda: make_multi_output_train_step(
        _two_output_model(), keras.optimizers.SGD(), {"a": keras.losses.MeanSquaredError()}, {}, {}),
     ValueError, r"losses must have one entry per output \['a', 'b'\]"),
    ("masked_mean, a mask of the wrong shape",
     lambda: sequences.masked_mean(tf.ones([4, 10]), tf.ones([4, 9], tf.bool)), ValueError,
     r"mask has shape \(4, 9\) but values have shape \(4, 10\)"),
    ("padding_mask of float tokens", lambda: sequences.padding_mask(tf.ones([2, 3])), TypeError, "tokens"),
    ("a dict missing an input", lambda: sequences.check_inputs({"tokens": tf.ones([2, 3], tf.int32)},
                                                               _dict_input_model()),
     ValueError, r"inputs is missing 'amount'"),
    ("a dict with a misspelt input", lambda: sequences.check_inputs(
        {"tokens": tf.ones([2, 3], tf.int32), "amount": tf.ones([2, 1]), "amont": tf.ones([2, 1])},
        _dict_input_model()), ValueError, "amont"),
    ("WeightAverage(momentum=1)", lambda: ema.WeightAverage([tf.Variable(1.0)], momentum=1.0), ValueError,
     "momentum"),
    ("WeightAverage of no variables", lambda: ema.WeightAverage([]), TypeError, "variables"),
    ("RetracingStep without a model", lambda: finetune.RetracingStep(
        "model", keras.optimizers.SGD(), keras.losses.MeanSquaredError()), TypeError, "model"),
    ("read_step_times of an empty folder",
     lambda: profiling.read_step_times(Path(__file__).parent / "xla_variant"),
     FileNotFoundError, "xla_variant"),
]


def _dict_input_model() -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    amount = keras.Input((1,), name="amount")
    x = keras.layers.Embedding(5, 2)(tokens)
    return keras.Model({"tokens": tokens, "amount": amount},
                       keras.layers.Dense(1)(keras.ops.mean(x, axis=1) + amount))


@pytest.mark.parametrize(("what", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(what: str, call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_every_issue_row_is_here() -> None:
    """The 19 mistakes found by trying the helpers as a reader would: 18 rows here, and
    ``np.float32`` numbers refused (below); the soft-label disagreement between the focal
    loss's two branches is tested against Keras in ``test_losses.py``."""
    source = Path(__file__).read_text()
    assert source.count("# issue") - 1 >= 18  # minus the mention in the module docstring


def test_numpy_numbers_are_numbers() -> None:
    """What a reader computes with NumPy is accepted wherever a Python number is."""
    loss = BinaryFocalLoss(alpha=np.float32(0.25), gamma=np.float64(2.0), from_logits=np.bool_(True))
    assert (loss.alpha, loss.gamma, loss.from_logits) == (0.25, 2.0, True)
    assert EarlyStopper(min_delta=np.float32(0.5)).min_delta == 0.5
