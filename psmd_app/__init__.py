"""Dash app to explore the partial soft-matching distance (``psmd-app``).

Modules: :mod:`~psmd_app.app` (``create_app``, ``main``),
:mod:`~psmd_app.layout` (components), :mod:`~psmd_app.ids` (component ids),
:mod:`~psmd_app.figures` (figure builders), :mod:`~psmd_app.callbacks`,
:mod:`~psmd_app.state` (server-side cache and compute),
:mod:`~psmd_app.data` (datasets and problems), :mod:`~psmd_app.media`
(stimulus and brain-map images), :mod:`~psmd_app.worker` (UMAP),
:mod:`~psmd_app.exports` and :mod:`~psmd_app.settings` (address bar).
"""
