"""Dash app to explore the partial soft-matching distance (``psmd-app``).

From a notebook, :func:`show` opens the app on arrays in memory::

    import psmd_app
    psmd_app.show(X, Y, images=stimuli)

Modules: :mod:`~psmd_app.app` (``create_app``, ``main``),
:mod:`~psmd_app.notebook` (``show``),
:mod:`~psmd_app.layout` (components), :mod:`~psmd_app.ids` (component ids),
:mod:`~psmd_app.figures` (figure builders), :mod:`~psmd_app.callbacks`,
:mod:`~psmd_app.state` (server-side cache and compute),
:mod:`~psmd_app.data` (datasets, uploads, data folder, problems),
:mod:`~psmd_app.media` (stimulus and brain-map images),
:mod:`~psmd_app.worker` (UMAP),
:mod:`~psmd_app.exports` and :mod:`~psmd_app.settings` (address bar).
"""

__all__ = ["show"]


def __getattr__(name: str):
    if name == "show":
        from psmd_app.notebook import show

        return show
    raise AttributeError(f"module 'psmd_app' has no attribute {name!r}")
