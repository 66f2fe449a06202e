"""Writes, one module per area. Views, the API and tasks call these; they hold the rules.

The names are re-exported here so callers write `services.job_create(...)` whatever module holds it.
"""

from ..errors import ValidationFailed
from .base_models import (
    HUB_LOOKUP_SECONDS,
    base_model_add,
    base_model_register,
    base_model_register_bundled,
    base_model_register_gemma,
    base_model_remove,
    base_model_set_profile,
    base_model_set_state,
)
from .counts import (
    sft_options,
    sft_options_error,
    sft_preflight_errors,
    token_stats_ask,
    token_stats_label,
    token_stats_request,
    token_stats_set,
    trainable_count_request,
    trainable_count_set,
)
from .datasets import (
    dataset_check_finish,
    dataset_check_progress,
    dataset_create,
    dataset_delete,
    dataset_set_columns,
    dataset_set_label_names,
)
from .job_checks import METHOD_NAMES, job_validate
from .job_combine import combine_errors, job_combine_create
from .job_defaults import job_defaults_preview
from .job_tidy import job_delete, job_form_query, job_preset_create, job_preset_delete, job_rename
from .jobs import job_create
from .merged_exports import merged_export_finish, merged_export_request, merged_export_start
from .playground import (
    PLAYGROUND_MAX_CHARS,
    PLAYGROUND_MAX_TEXTS,
    playground_run_create,
    playground_run_partial,
    playground_run_refresh,
    playground_run_set,
)
from .storage_sweep import storage_sweep
from .sweeps import AXES, sweep_cancel, sweep_create, sweep_points
from .teams import team_delete

__all__ = [
    "AXES",
    "HUB_LOOKUP_SECONDS",
    "METHOD_NAMES",
    "PLAYGROUND_MAX_CHARS",
    "PLAYGROUND_MAX_TEXTS",
    "ValidationFailed",
    "base_model_add",
    "base_model_register",
    "base_model_register_bundled",
    "base_model_register_gemma",
    "base_model_set_state",
    "base_model_remove",
    "base_model_set_profile",
    "dataset_check_finish",
    "dataset_check_progress",
    "dataset_create",
    "dataset_delete",
    "dataset_set_columns",
    "dataset_set_label_names",
    "job_delete",
    "job_form_query",
    "job_preset_create",
    "job_preset_delete",
    "job_rename",
    "merged_export_finish",
    "merged_export_request",
    "merged_export_start",
    "storage_sweep",
    "sweep_cancel",
    "sweep_create",
    "sweep_points",
    "job_create",
    "job_combine_create",
    "combine_errors",
    "job_defaults_preview",
    "job_validate",
    "playground_run_create",
    "playground_run_partial",
    "playground_run_refresh",
    "playground_run_set",
    "sft_options",
    "sft_options_error",
    "sft_preflight_errors",
    "team_delete",
    "token_stats_ask",
    "token_stats_label",
    "token_stats_request",
    "token_stats_set",
    "trainable_count_request",
    "trainable_count_set",
]
