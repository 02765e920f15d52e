"""The training UI: the training window, its live dashboard and the settings dialog.

Qt lives here; what these widgets compute without Qt (smoothing, the batch log,
axis ticks) is in :mod:`builder_app.training.curves`, and the events they read
are :mod:`builder_app.training.events`.
"""
