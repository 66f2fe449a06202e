"""The registry of PEFT methods. Each method is one module in this package that calls register() on import;
the package imports every module whose name does not start with "_", so a new method is one new file.

Nothing here imports torch or peft at module level: the web app reads the registry to render job forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry
from ..schema import Param, schema_as_json

FAMILIES = ("additive", "reparameterised", "selective", "prompt", "representation")
# PEFT-Ref typology (Sabry & Belz, 2023): where in the transformer a method acts, and how.
ACTS_ON = ("input", "attention", "ffn", "representation", "output")
HOW = {
    "adds": "adds parameters",
    "reparameterises": "reparameterises a weight update",
    "selects": "selects existing parameters",
    "prompts": "adds prompt tokens",
}
# Model types whose layer names peftcore knows (placement, layer ranges, freeze); see _placement.py.
KNOWN_ARCHITECTURES = (
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "llama",
    "mistral",
    "qwen2",
    "gemma3_text",
    "gpt2",
    "t5",
)


def linear_only(label: str) -> dict[str, str]:
    """The refusal for peft tuners that wrap only torch.nn.Linear: GPT-2 builds its layers from Conv1D."""
    return {
        "gpt2": f"{label} works only on ordinary linear layers, and GPT-2 models build theirs from Conv1D; "
        "choose LoRA, IA3, AdaLoRA or VeRA for GPT-2, or a Llama- or BERT-style model"
    }


def virtual_tokens() -> Param:
    """The prompt methods' shared setting: how many learned tokens go in front of each text (peft's default 20)."""
    return Param(
        "num_virtual_tokens",
        "int",
        20,
        min=1,
        max=256,
        label="Virtual tokens",
        help="How many learned tokens are put in front of each text. They take up room in the maximum length.",
    )


# A prompt method's virtual tokens must leave the rows at least this many of the model's positions.
MIN_ROW_POSITIONS = 16


def virtual_tokens_problem(method: Method, method_params: dict, positions: int | None) -> str | None:
    """Why a prompt method's virtual tokens leave the rows too few of the model's `positions` (None: they fit, or
    the model sets no limit). Pure: the job form and the worker both ask it."""
    virtual = (method_params.get("num_virtual_tokens") or 0) if method.how == "prompts" else 0
    if not virtual or positions is None or positions - virtual >= MIN_ROW_POSITIONS:
        return None
    return (
        f"{method.label}: {virtual} virtual tokens leave {max(positions - virtual, 0)} of the model's {positions} "
        f"positions for the rows; use at most {positions - MIN_ROW_POSITIONS} virtual tokens"
    )


def checkpointing_problem(method: Method, params: dict) -> str | None:
    """Why activation checkpointing cannot be on with this method (None: it can, or it is off). Pure: the job form
    and the worker both ask it."""
    if not params.get("gradient_checkpointing") or method.allows_checkpointing:
        return None
    return (
        f"{method.label} cannot recompute its layers in the backward pass (activation checkpointing): turn "
        "gradient checkpointing off"
    )


# For text classification only: T5's sequence-to-sequence model takes prompt vectors (peft's SEQ_2_SEQ_LM).
T5_NO_PROMPTS = (
    "{} cannot classify with T5 models: T5's classification model does not accept the prompt vectors this "
    "method adds in front of the input; choose LoRA, IA3 or another method for T5"
)


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    family: str
    description: str  # one line for a non-expert
    paper: str
    params: tuple[Param, ...]
    tasks: tuple[str, ...]
    recommended_learning_rate: float
    can_merge: bool
    # build(model, params, task, *, new_modules=(), total_steps=None) -> model; params are already validated.
    # new_modules names the modules whose weights were newly initialised when loading (they train and are saved
    # too); total_steps is the number of optimizer steps the run will take (AdaLoRA's schedule needs it).
    build: Callable[..., Any]
    acts_on: tuple[str, ...] = ()
    how: str = "adds"
    # Model types the method is declared for; others are refused before loading, with refusal_reason.
    architectures: tuple[str, ...] = KNOWN_ARCHITECTURES
    # Model types refused for a specific reason (e.g. BitFit on models without bias terms); a key
    # "model_type:task" refuses that model type for one task only.
    refusals: Mapping[str, str] = field(default_factory=dict)
    # Called after every optimizer step as on_step(model, step) with step counting from 0 (AdaLoRA's budget).
    on_step: Callable[[Any, int], None] | None = None
    # extra_loss(model) -> a tensor added to the task loss every step (KaSA's regularisers), or 0.0.
    extra_loss: Callable[[Any], Any] | None = None
    # "peft": a peft adapter folder (PeftModel.from_pretrained); "peftcore": trained tensors + JSON, loaded
    # with peftcore.load_adapter; "full": a whole transformers model folder.
    saved_as: str = "peft"
    # auto(method_params) -> {name: (value, reason)}: values the method chooses for params left empty (LoRA's
    # alpha follows its rank); defaults.resolve records the reasons.
    auto: Callable[[dict], dict] | None = None
    # learning_rate_for(method_params) -> (rate, reason) when these settings want another rate than
    # recommended_learning_rate (LoRA's CorDA starts), else None.
    learning_rate_for: Callable[[dict], tuple[float, str] | None] | None = None
    # Trains on a base model loaded in 4 bits (QLoRA): peft has a bitsandbytes layer for the method's adapter.
    quantized_base: bool = False
    # Building it reads the weights' values (an SVD, a mask drawn from them): counting.py builds such a tuner on
    # random real weights, since the meta device has no values (the count does not depend on them).
    needs_weight_values: bool = False
    # data_init(model, params, sample): after build, before the first step, an initialisation that reads the
    # training rows (EVA, LoRA-GA) when its params ask for it; sample is a run_options.TrainingSample (inputs(),
    # labelled(), loss(model, batch), resuming). Not when continuing an adapter (a stacked method gets it).
    data_init: Callable[..., None] | None = None
    # save(model, folder): writes the peft folder itself where peft's save_pretrained cannot (X-LoRA).
    save: Callable[[Any, Any], None] | None = None
    # The model card's lines that apply the saved folder to `model`, where peft's plain from_pretrained does not
    # (X-LoRA: its experts' paths); empty: the saved_as default.
    load_lines: tuple[str, ...] = ()
    # Its saved adapter loads trainable, so a job can continue training it (X-LoRA's cannot).
    can_continue: bool = True
    # Activation checkpointing recomputes its blocks correctly in the backward pass (X-LoRA's router weights are
    # injected by hooks that are gone by then).
    allows_checkpointing: bool = True
    # expand_tasks(model, n): after build, give the adapter n tasks, a group column's values each routed to its own
    # (task_routing.py: Poly, multitask prompt tuning); None: a group column trains one adapter per group.
    expand_tasks: Callable[[Any, int], None] | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"method {self.name!r}: family must be one of {FAMILIES}")
        if not self.acts_on or not set(self.acts_on) <= set(ACTS_ON):
            raise ValueError(f"method {self.name!r}: acts_on must be a non-empty tuple from {ACTS_ON}")
        if self.how not in HOW:
            raise ValueError(f"method {self.name!r}: how must be one of {tuple(HOW)}")
        if self.saved_as not in ("peft", "peftcore", "full"):
            raise ValueError(f"method {self.name!r}: saved_as must be peft, peftcore or full")

    def supports(self, model_type: str, task: str | None = None) -> str | None:
        """None when the method can be used with this model type (for this task), else the reason it cannot."""
        for key in (f"{model_type}:{task}", model_type):
            if key in self.refusals:
                return self.refusals[key]
        if self.architectures and model_type not in self.architectures:
            return (
                f"{self.label} is not available for {model_type!r} models; it is declared for: "
                f"{', '.join(self.architectures)}"
            )
        return None


class UnknownMethodError(ValueError):
    pass


_METHODS: Registry[Method] = Registry("method", lambda method: method.name, UnknownMethodError)


def register(method: Method) -> Method:
    return _METHODS.register(method)


def get_method(name: str) -> Method:
    return _METHODS.get(name)


def all_methods() -> list[Method]:
    return _METHODS.all()


def method_as_json(method: Method) -> dict:
    return {
        "name": method.name,
        "label": method.label,
        "family": method.family,
        "description": method.description,
        "paper": method.paper,
        "params": schema_as_json(method.params),
        "tasks": list(method.tasks),
        "recommended_learning_rate": method.recommended_learning_rate,
        "can_merge": method.can_merge,
        "acts_on": list(method.acts_on),
        "how": method.how,
        "how_label": HOW[method.how],
        "architectures": list(method.architectures),
        "refusals": dict(method.refusals),
        "saved_as": method.saved_as,
    }


def methods_as_json() -> list[dict]:
    return [method_as_json(m) for m in all_methods()]


# LoRA first: the job form preselects the first method, and it is the usual choice.
_METHODS.discover(__name__, __path__, first=("lora", "ia3"))
