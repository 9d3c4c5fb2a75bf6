"""Chapter 18's fine-tuning step: the stale-graph trap, RetracingStep equal to fit() per phase, checkers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import check
from tutorial_helpers.finetune import RetracingStep

MSE = keras.losses.MeanSquaredError()


def build(seed: int = 3) -> keras.Sequential:
    """A pretrained base and a new head; the base starts frozen."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="base"), keras.layers.Dense(3, name="head")]
    )
    model.get_layer("base").trainable = False
    return model


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(96, 4)).astype(np.float32), rng.normal(size=(96, 3)).astype(np.float32)


def batches(arrays) -> list[tuple[tf.Tensor, tf.Tensor]]:
    x, y = arrays  # 6 batches of 16, in order, as fit(shuffle=False) cuts them
    return [(tf.constant(x[i : i + 16]), tf.constant(y[i : i + 16])) for i in range(0, len(x), 16)]


def kernel(model: keras.Model, name: str) -> np.ndarray:
    return model.get_layer(name).kernel.numpy()


def test_a_plain_tf_function_keeps_the_base_frozen_after_unfreezing(arrays) -> None:
    model = build()
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(x, y):  # reads model.trainable_variables once, when traced
        with tf.GradientTape() as tape:
            loss = MSE(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    for x, y in batches(arrays):
        train_step(x, y)
    traced = train_step.experimental_get_tracing_count()  # 2: the first call made the optimizer's variables
    model.get_layer("base").trainable = True  # unfrozen: 4 trainable variables now
    assert len(model.trainable_variables) == 4
    base, head = kernel(model, "base"), kernel(model, "head")
    for x, y in batches(arrays):
        train_step(x, y)  # no error, no warning: the old graph runs
    np.testing.assert_array_equal(kernel(model, "base"), base)  # the trap: the base did not train
    assert not np.array_equal(kernel(model, "head"), head)
    assert train_step.experimental_get_tracing_count() == traced  # not traced again


def test_retracing_step_trains_the_unfrozen_base(arrays) -> None:
    model = build()
    step = RetracingStep(model, keras.optimizers.Adam(1e-2), MSE)
    base = kernel(model, "base")
    for x, y in batches(arrays):
        step(x, y)
    np.testing.assert_array_equal(kernel(model, "base"), base)  # frozen while frozen
    assert step.traces == 1

    model.get_layer("base").trainable = True
    step.set_optimizer(keras.optimizers.Adam(1e-3))
    for x, y in batches(arrays):
        step(x, y)
    assert not np.array_equal(kernel(model, "base"), base)
    assert step.traces == 2  # one tf.function per phase, not one per step

    model.get_layer("base").trainable = False  # frozen again: fewer variables, the same optimizer knows them
    base = kernel(model, "base")
    step(*batches(arrays)[0])
    np.testing.assert_array_equal(kernel(model, "base"), base)
    assert step.traces == 3


def test_retracing_step_equals_fit_phase_by_phase(arrays) -> None:
    model = build()
    step = RetracingStep(model, keras.optimizers.Adam(1e-2), MSE)
    reference = build()
    losses = []
    for phase, rate in ((1, 1e-2), (2, 1e-3)):
        if phase == 2:  # unfreeze: a new optimizer with a smaller learning rate, for both
            model.get_layer("base").trainable = True
            reference.get_layer("base").trainable = True
            step.set_optimizer(keras.optimizers.Adam(rate))
        tracker = keras.metrics.Mean()  # the epoch's loss as fit() averages it
        for _ in range(2):
            tracker.reset_state()
            for x, y in batches(arrays):
                tracker.update_state(step(x, y), sample_weight=len(x))
            losses.append(float(tracker.result()))
        reference.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")  # compile again after a change
        history = reference.fit(*arrays, batch_size=16, epochs=2, shuffle=False, verbose=0)
        assert losses[-2:] == history.history["loss"], phase  # measured: equal bit for bit
        for mine, theirs in zip(model.weights, reference.weights, strict=True):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert step.traces == 2 and losses[-1] < losses[0]


def test_an_optimizer_built_for_the_head_is_refused_with_what_to_do(arrays) -> None:
    model = build()
    step = RetracingStep(model, keras.optimizers.Adam(1e-2), MSE)
    x, y = batches(arrays)[0]
    step(x, y)
    model.get_layer("base").trainable = True
    with pytest.raises(ValueError, match=r"built for 2 variables and cannot update 2 new ones "
                                         r"\(sequential.*/base/kernel, .*base/bias\).*step.set_optimizer"):
        step(x, y)
    with pytest.raises(ValueError, match="set_optimizer"):  # still refused, nothing half-changed
        step(x, y)
    step.set_optimizer(keras.optimizers.Adam(1e-3))
    step(x, y)
    assert step.traces == 2  # the refused calls made no tf.function

    # what Keras itself says when the same optimizer is given the new variables
    optimizer = keras.optimizers.Adam(1e-2)
    model.get_layer("base").trainable = False
    optimizer.build(model.trainable_variables)
    model.get_layer("base").trainable = True
    keras_says = (r"(?s)Unknown variable: <Variable path=sequential.*/base/kernel.*>\. This optimizer "
                  r"can only be called for the variables it was originally built with\. When working with "
                  r"a new set of variables, you should recreate a new optimizer instance\.")
    with pytest.raises(ValueError, match=keras_says):
        optimizer.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)


def test_an_unbuilt_model_is_built_in_the_first_trace_and_not_traced_again(arrays) -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(3)])  # no Input: no variables yet
    step = RetracingStep(model, keras.optimizers.SGD(0.1), MSE)
    first = [float(step(x, y)) for x, y in batches(arrays)]
    assert step.traces == 1 and len(model.trainable_variables) == 4 and first[-1] < first[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("model", keras.optimizers.Adam(), MSE), "model must be a keras.Model"),
        ((None, keras.optimizers.Adam(), MSE), "model must be a keras.Model"),
        (("built", "adam", MSE), "optimizer must be a keras.optimizers.Optimizer"),
        (("built", keras.optimizers.Adam(), "mse"), "loss_fn must be a loss object"),
        (("built", keras.optimizers.Adam(), 3), "loss_fn must be callable"),
    ],
)
def test_bad_inputs_name_the_argument(arguments, message) -> None:
    model, optimizer, loss_fn = arguments
    with pytest.raises(TypeError, match=message):
        RetracingStep(build() if model == "built" else model, optimizer, loss_fn)


def test_set_optimizer_refuses_what_is_not_an_optimizer() -> None:
    step = RetracingStep(build(), keras.optimizers.Adam(), MSE)
    with pytest.raises(TypeError, match=r"optimizer must be a keras\.optimizers\.Optimizer"):
        step.set_optimizer("adam")


# frozen_batchnorm: four readers' steps, two right recipes and two wrong ones


def sgd_step(model, x, y, training=True):
    with tf.GradientTape() as tape:
        loss = MSE(y, model(x, training=training))
    keras.optimizers.SGD(0.1).apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)


def bn_not_trainable(model, x, y):  # the keras.io guide's recipe: gamma and beta frozen too
    model.layers[1].trainable = False
    sgd_step(model, x, y)


def bn_called_in_inference_mode(model, x, y):  # training=False: the statistics stay, gamma and beta train
    sgd_step(model, x, y, training=False)


def everything_in_training_mode(model, x, y):
    sgd_step(model, x, y)


def statistics_put_back(model, x, y):  # training mode, the moving statistics restored afterwards
    bn = model.layers[1]
    saved = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    sgd_step(model, x, y)
    bn.moving_mean.assign(saved[0])
    bn.moving_variance.assign(saved[1])


def whole_model_frozen(model, x, y):
    model.trainable = False
    sgd_step(model, x, y)


@pytest.mark.parametrize("right", [bn_not_trainable, bn_called_in_inference_mode])
def test_frozen_batchnorm_accepts_both_recipes(right, capsys) -> None:
    assert check.frozen_batchnorm(right) is True
    assert capsys.readouterr().out.strip() == "frozen_batchnorm: correct"


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (everything_in_training_mode, "the moving mean moved: batch normalization ran in training mode"),
        (statistics_put_back, "normalized with the batch's statistics"),
        (whole_model_frozen, "the kernel of dense_1 did not change"),
        (lambda model, x, y: None, "your step never called the model"),
    ],
)
def test_frozen_batchnorm_rejects_with_a_hint(wrong, hint, capsys) -> None:
    assert check.frozen_batchnorm(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("frozen_batchnorm: not yet") and hint in out
