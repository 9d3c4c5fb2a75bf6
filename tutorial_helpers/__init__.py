"""Helpers for the executable book *Custom Training Loops in TensorFlow*.

Import :func:`prepare_notebook` first: it must run before TensorFlow is
imported so that TensorFlow's start-up logs can be silenced.  The other
modules import TensorFlow and are imported explicitly, one concern each::

    from tutorial_helpers import prepare_notebook
    prepare_notebook()
    from tutorial_helpers import data, linear, plotting
"""

from tutorial_helpers.runtime import prepare_notebook, quiet_import_tensorflow

__all__ = ["prepare_notebook", "quiet_import_tensorflow"]
__version__ = "0.1.0"
