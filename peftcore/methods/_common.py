"""Helpers shared by the method modules (no torch or peft at module level)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..schema import Param
from ._placement import PlacementError, placement_params, target_regex

_MODULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")


class MethodBuildError(ValueError):
    """The method's parameters do not fit this model (classified as bad_params)."""


def module_names_param(name: str, help: str, label: str = "") -> Param:
    return Param(name, "str", None, help=help, label=label, optional=True)


def parse_module_names(value: str | None, param_name: str) -> list[str] | None:
    """ "query, value" -> ["query", "value"]; None or blank -> None (use peft's default for the model)."""
    if value is None or not value.strip():
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    bad = [n for n in names if not _MODULE_NAME.match(n)]
    if bad:
        raise MethodBuildError(
            f"{param_name}: {', '.join(map(repr, bad))} is not a module name; give comma-separated names such "
            "as 'query, value'"
        )
    return names


def modules_to_save(new_modules: Sequence[str]) -> list[str] | None:
    return sorted(set(new_modules)) or None


TARGET_MODULES_HELP = (
    "Experts only: comma-separated layer names, e.g. 'query, value'. When set, it replaces 'Where' and 'Layers'."
)


def targeting_params(
    usual_help: str = "the method's usual layers for this model", default: str = "usual", offer_usual: bool = False
) -> tuple:
    """placement + layers + target_modules (the expert override), shared by every method that targets layers."""
    return (
        *placement_params(default, usual_help, offer_usual),
        module_names_param("target_modules", label="Target modules", help=TARGET_MODULES_HELP),
    )


def peft_usual_targets(mapping_name: str, model_type: str) -> list[str] | None:
    from peft.utils import constants

    return (getattr(constants, mapping_name, {}) or {}).get(model_type)


def resolve_targets(model, params: dict, mapping_name: str | None) -> list[str] | str | None:
    """target_modules for peft: the expert list when given; None for the usual layers of every block (peft's
    own default); else one regex built from placement and layers."""
    explicit = parse_module_names(params.get("target_modules"), "target_modules")
    if explicit is not None:
        return explicit
    placement, layers = params.get("placement", "usual"), (params.get("layers") or "all").strip().lower()
    if placement == "usual" and layers == "all":
        return None
    model_type = getattr(model.config, "model_type", "")
    usual = peft_usual_targets(mapping_name, model_type) if mapping_name else None
    try:
        return target_regex(model.config, placement, layers, usual)
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc


def apply_peft(model, config, method_label: str):
    from peft import get_peft_model

    try:
        return get_peft_model(model, config)
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. target modules not found, shapes that do not fit
        raise MethodBuildError(f"{method_label} cannot be applied to this model: {exc}") from exc


def peft_builder(
    config_name: str,
    label: str,
    make_options: Callable[[dict, object, int | None], dict],
    mapping_name: str | None = None,
    targets: bool = True,
    heads: bool = True,
):
    """build() for a peft tuner: config_name is the peft config class, make_options(params, model, total_steps)
    gives its method-specific options; task type, targets and the head (modules_to_save) are filled in here.
    heads=False: the config has no modules_to_save (a new head could neither train nor be saved)."""

    def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
        import peft

        from ..tasks import peft_task_type

        options = dict(make_options(params, model, total_steps))
        if targets:
            options.setdefault("target_modules", resolve_targets(model, params, mapping_name))
        config_class = getattr(peft, config_name)
        if heads:
            options["modules_to_save"] = modules_to_save(new_modules)
        elif new_modules:
            raise MethodBuildError(f"{label} cannot train the new layers {', '.join(new_modules)} this task adds")
        try:
            config = config_class(task_type=peft_task_type(task), **options)
        except (ValueError, TypeError) as exc:
            raise MethodBuildError(f"{label}: {exc}") from exc
        return apply_peft(model, config, label)

    return build
