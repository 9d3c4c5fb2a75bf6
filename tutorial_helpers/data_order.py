"""Chapter 8: a seeded ``tf.data`` shuffle, put back where a resumed run needs it.

``ds.shuffle(n, seed=s)`` draws a new order each time an iterator is made
over ``ds`` (``reshuffle_each_iteration=True``, the default): epoch ``k``
sees the ``k``-th order of a sequence fixed by the seed.  That sequence lives
inside the dataset object, out of reach of a checkpoint.  A run resumed after
``k`` epochs with a freshly built dataset would see the *first* order again,
and its weights would drift from those of an uninterrupted run.

The fix used here needs no access to TensorFlow's internals: making an
iterator is what advances the sequence (reading from it is not needed), so
:func:`replay_epochs` makes, and drops, as many iterators as the epochs
already done.  :func:`count_epoch` counts the iterators the trainer made on
each dataset object, so a dataset already read in this process (the cell
that was interrupted, run again) is advanced only by what is missing, or
refused when it has gone past the checkpoint: a shuffle cannot be rewound.

The orders also depend on the seeds: the trainer's run fingerprint holds
:func:`shuffle_seeds`, so a dataset built with other seeds is refused on
resume.  A shuffle with no seed at all is refused by TensorFlow itself once
op determinism is on (``prepare_notebook`` turns it on).
"""

from __future__ import annotations

import weakref

import tensorflow as tf

_epochs_read: weakref.WeakKeyDictionary[tf.data.Dataset, int] = weakref.WeakKeyDictionary()


def _shuffles(dataset: tf.data.Dataset) -> list[tf.data.Dataset]:
    """The ``shuffle`` steps in ``dataset``'s pipeline, from the last one back."""
    found, pending, seen = [], [dataset], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if hasattr(current, "_reshuffle_each_iteration"):
            found.append(current)
        pending.extend(getattr(current, "_inputs", lambda: [])())
    return found


def reshuffles(dataset: tf.data.Dataset) -> bool:
    """Whether ``dataset``'s pipeline has a ``shuffle`` that draws a new order per iteration."""
    return any(shuffle._reshuffle_each_iteration is True for shuffle in _shuffles(dataset))


def shuffle_seeds(dataset: tf.data.Dataset) -> list[list[int | None]]:
    """The seed pair of every ``shuffle`` in the pipeline: ``[global seed, op seed]``.

    TensorFlow derives a shuffle's order from both the seed given to
    ``shuffle`` and the global seed set when the dataset was built
    (``tf.random.set_seed``, which ``keras.utils.set_random_seed`` calls), so
    a resumed run sees the same orders only if both are the same.  ``None``
    means no seed: the order is new in every process.
    """
    return [
        [None if seed is None else int(seed) for seed in (shuffle._seed, shuffle._seed2)]
        for shuffle in _shuffles(dataset)
    ]


def count_epoch(dataset: tf.data.Dataset) -> None:
    """Note that one more epoch (one more iterator) is about to be read from ``dataset``."""
    _epochs_read[dataset] = _epochs_read.get(dataset, 0) + 1


def epochs_read(dataset: tf.data.Dataset) -> int:
    """How many epochs the trainer has read from this dataset object in this process."""
    return _epochs_read.get(dataset, 0)


def replay_epochs(dataset: tf.data.Dataset, epochs_done: int, name: str = "train_data") -> int:
    """Advance ``dataset``'s shuffle to the order of epoch ``epochs_done``; return the iterators made.

    Nothing is done for a pipeline without a reshuffling ``shuffle`` (its
    order does not depend on the epoch).  Raises ``ValueError`` when this
    dataset object has already been read for more epochs than that.
    """
    if not reshuffles(dataset):
        return 0
    read = epochs_read(dataset)
    if read > epochs_done:
        raise ValueError(
            f"{name} has already been read for {read} epochs in this process, but the checkpoint "
            f"holds {epochs_done}: its shuffle order cannot be rewound. Build the dataset again "
            "(run the cell that makes it) and resume with the new one"
        )
    for _ in range(epochs_done - read):
        iter(dataset)  # making the iterator draws the next order; it is dropped unread
        count_epoch(dataset)
    return epochs_done - read
