"""Test tiers: every collected test gets its `gui`, `training` and `slow` markers here.

- ``gui``: the test needs a QApplication (it uses the ``qtbot`` or ``qapp`` fixture) or drives
  the editor window (the window's test modules, which also start the app in a subprocess).
- ``training``: the test runs ``model.fit`` (a training run in a child process, the training
  window's Train button, an exported training script or ``builder-app train``).
- ``slow``: the test took 8 s or more in a full run on the 2-core machine (``--durations``);
  refresh the list from ``python -m pytest -q -n 2 --durations=60`` when tests change.

A test may also carry ``@pytest.mark.slow`` (or the others) itself. The quick tier is
``python -m pytest -q -m "not slow and not training"`` (see the README).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

#: The editor window's fixtures (``loader``, ``isolated``), for every module that drives it.
pytest_plugins = ["tests.editor_support"]

#: Every test of these modules drives the editor window.
GUI_MODULES = {"test_editor.py", "test_editor_actions.py"}

#: Module -> the tests in it that train (``None``: all of them).
TRAINING: dict[str, set[str] | None] = {
    "test_training.py": None,
    "test_training_protect.py": {
        "test_closing_a_window_with_a_live_run_asks_and_does_what_was_answered",
        "test_fresh_weights_start_from_the_initializers_not_the_projects",
        "test_a_warm_child_serves_train_and_a_dead_one_falls_back_to_a_cold_start",
        "test_a_warm_child_that_prepared_the_run_trains_exactly_as_a_cold_start",
    },
    "test_training_window.py": {
        "test_train_watch_and_keep_the_weights",
        "test_stop_in_the_middle_keeps_the_window_answering",
        "test_bad_data_is_one_line_in_the_window",
    },
    "test_train_script.py": {
        "test_digits_script_trains_and_saves",
        "test_settings_reach_the_script_and_npz_data_feeds_several_inputs",
        "test_schedules_callbacks_and_csv_data_reach_the_script",
    },
    "test_channels_first.py": {"test_training_refuses_in_one_line_or_trains"},
}

#: Module -> tests that took 8 s or more: a name (all its parametrizations) or name[id].
#: Measured with ``-n 2 --durations`` on the 2-core machine (full run: 640 s; quick tier: 362 s).
SLOW: dict[str, set[str]] = {
    "test_catalog.py": {"test_check_config_never_raises_and_never_passes_foreign_objects"},  # 14 s
    "test_channels_first.py": {"test_training_refuses_in_one_line_or_trains"},  # 145 s
    "test_controller.py": {"test_every_gesture_keeps_the_faces_exact"},  # 10 s
    "test_keras_compat.py": {"test_what_the_probe_says_is_what_running_the_layers_does"},  # 20 s
    "test_project.py": {
        "test_a_killed_save_leaves_a_valid_file_and_the_next_save_cleans_up",  # 7-11 s
        "test_two_processes_saving_one_project_at_once_leave_a_whole_file",  # 10-18 s (two spawned savers)
    },
    "test_shapes.py": {
        "test_applications_agree_with_keras[DenseNet121]",  # 13 s
        "test_applications_agree_with_keras[EfficientNetB0]",  # 11 s
    },
    "test_cli.py": {
        "test_every_export_at_once_with_check",  # 25 s
        "test_export_keras_and_savedmodel_with_check",  # 16 s
        "test_installed_entry_point_runs",  # 9 s
    },
    "test_catalog_cache.py": {"test_live_derivation_round_trips_exactly_through_json"},  # 49 s under load
    "test_recovery_offers.py": {"test_a_clean_quit_leaves_nothing_to_offer[app-quit-two-windows]"},  # 8 s
    "test_render.py": {
        "test_render_command_draws_a_model_too_big_for_the_quick_path",  # 37 s: a fresh Python renders
        "test_a_command_exiting_mid_pass_waits_for_the_worker_thread",  # 26 s: three passes, a fresh Python
    },
    "test_editor.py": {
        "test_render_command_draws_the_canvas",  # 70 s: four renders, each a fresh Python
        "test_builder_app_opens_the_editor_and_says_so_without_a_display",  # 8 s
    },
    "test_import.py": {
        "test_round_tripped_keras_exports_load_safely_in_a_fresh_python",  # 46 s
        "test_module_functions_named_by_a_config_are_never_called",  # 28 s
        "test_import_command",  # 25 s
        "test_keras_file_round_trip[DenseNet121]",  # 24 s
        "test_keras_file_round_trip[ResNet50V2]",  # 19 s
        "test_keras_file_round_trip[EfficientNetB0]",  # 15 s
        "test_keras_file_round_trip[MobileNetV2]",  # 9 s
        "test_lambda_with_marshalled_code_is_an_inert_node",  # 20 s
        "test_keras2_h5_files_import_exactly[keras2_tf_ops]",  # 16 s
        "test_truncated_and_incomplete_archives",  # 8-17 s
        "test_savedmodel_of_an_imported_model_serves_the_same_outputs",  # 11 s
    },
    "test_onnx_export.py": {"test_onnx_runs_in_onnxruntime_like_the_model[masked_recurrent]"},  # 22 s
    "test_python_code.py": {
        "test_runs_as_a_script_in_a_fresh_python",  # 8 s
        "test_code_lints_runs_and_rebuilds_the_model[MobileNetV2]",  # 15 s
    },
    "test_saved_model.py": {
        "test_check_reports_an_export_of_other_shapes_in_one_line",  # 8 s
        "test_keras_file_loads_in_a_fresh_python_with_the_weights",  # 8 s
    },
    "test_train_script.py": {
        "test_digits_script_trains_and_saves",  # 32 s and 26 s
        "test_export_command_refuses_bad_settings_in_one_line",  # 23 s
        "test_schedules_callbacks_and_csv_data_reach_the_script",  # 16 s
        "test_settings_reach_the_script_and_npz_data_feeds_several_inputs",  # 12 s
        "test_a_project_without_data_asks_for_it",  # 9 s
    },
    "test_training.py": {
        "test_a_run_streams_events_and_brings_the_weights_back",  # 34 s
        "test_pause_and_resume",  # 19 s
        "test_resume_after_a_crash_with_backup_and_restore",  # 18 s
        "test_train_command_reaches_90_percent_on_digits_and_writes_metrics",  # 18 s
        "test_data_that_does_not_fit_says_exactly_what_and_offers_the_fix",  # 17 s
        "test_train_command_refuses_bad_data_in_one_line",  # 17 s
        "test_stop_ends_the_run_promptly_with_the_weights_so_far",  # 13 s
        "test_mirrored_strategy_over_two_logical_cpus",  # 12 s
        "test_nan_loss_ends_the_run_with_a_clear_status",  # 11 s
    },
    "test_training_window.py": {
        "test_train_watch_and_keep_the_weights",  # 24 s
        "test_stop_in_the_middle_keeps_the_window_answering",  # up to 180 s
    },
}

#: Fixtures that need a QApplication.
QT_FIXTURES = {"qtbot", "qapp"}


def tier_markers(module: str, test: str, fixtures: Iterable[str]) -> set[str]:
    """The tier markers of ``test`` (a function name, with or without ``[id]``) in ``module``."""
    function = test.split("[")[0]
    marks = set()
    if module in GUI_MODULES or QT_FIXTURES & set(fixtures):
        marks.add("gui")
    if module in TRAINING and (TRAINING[module] is None or function in TRAINING[module]):
        marks.add("training")
    if {function, test} & SLOW.get(module, set()):
        marks.add("slow")
    return marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.path)).name
        for name in sorted(tier_markers(module, item.name, getattr(item, "fixturenames", ()))):
            item.add_marker(getattr(pytest.mark, name))
