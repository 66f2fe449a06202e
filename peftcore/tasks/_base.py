"""The task protocol. A task module defines a Task (the registry's light description of the task and its entry
points: reading rows, loading the model, the model card, the playground) and a Runner (one training run's side
of it: encoding, batching, the loss and evaluation), and registers one Task instance.

Standard library only at module level: the web process reads Task's fields. Torch, transformers and peft are
imported inside the methods that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BAD_DATA, TrainingError
from ..formats import DataError

if TYPE_CHECKING:
    from ..spec import TrainSpec

# The spec fields beyond text_column and label_column that a task may read (Task.fields names its own).
OPTIONAL_FIELDS = ("input_column", "messages_column", "template")
# The playground's limits per request: it is for trying an adapter, not batch inference.
PLAYGROUND_TEXTS = 32
PLAYGROUND_MAX_LENGTH = 512
PLAYGROUND_NEW_TOKENS = 256


@dataclass
class Rows:
    """A job's examples, read and split; labels: the label set of a task with labels (else empty)."""

    train: list
    eval: list
    labels: list[str] = field(default_factory=list)


@dataclass
class Predictor:
    """A finished adapter loaded for the playground (Task.load_predictor, Task.predict)."""

    task: Task
    model: Any
    tokenizer: Any
    labels: list[str] = field(default_factory=list)
    runner: Runner | None = None  # what a generative task generates with
    # the adapter was trained on a cut base (Light-PEFT): with the adapter off, the model is the cut base, not the base
    base_cut: bool = False


class Task:
    """One task the studio trains. Subclasses set the fields below and implement the methods that raise."""

    id: ClassVar[str]
    name: ClassVar[str]  # short, for forms and tables
    description: ClassVar[str]
    column_roles: ClassVar[tuple[str, str]]  # what text_column and label_column hold, as a form labels them
    column_help: ClassVar[tuple[str, str]] = ("", "")  # the form's help under those two fields
    # Column names the form tries first for those two fields, in order (a dataset's own names are unknown).
    column_guesses: ClassVar[tuple[tuple[str, ...], tuple[str, ...]]] = ((), ())
    generative: ClassVar[bool] = False  # writes text (the playground generates; the report has samples)
    has_labels: ClassVar[bool] = False  # a label set read from the data: labels.json, a new classifier head
    fields: ClassVar[tuple[str, ...]] = ()  # the OPTIONAL_FIELDS it reads
    column_paths: ClassVar[bool] = False  # columns may be paths into nested cells (instances[0].output)
    # The third column's role when the task reads input_column as one ((label, help) for the form), else None.
    input_role: ClassVar[tuple[str, str] | None] = None
    # The loss compares with the untouched model, obtained by switching a peft adapter off (DPO's reference).
    reference_by_disabling_adapter: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ()  # the final evaluation's metrics (the report adds train_loss)
    peft_type: ClassVar[str]  # the peft.TaskType member its adapters are built for
    auto_class: ClassVar[str]  # the transformers class its model loads with
    runner_class: ClassVar[type[Runner]]

    def __repr__(self) -> str:
        return f"<Task {self.id}>"

    # --- light: the web process calls these ---------------------------------------------------------------

    def architecture_refusal(self, config: dict) -> str | None:
        """Why a model (by its config.json) cannot do this task, or None."""
        return None

    def spec_problem(self, spec: dict) -> str | None:
        """What a job spec (the JSON) lacks for this task, or None."""
        missing = [key for key in ("text_column", "label_column") if not spec.get(key)]
        return f"the job spec is missing: {', '.join(missing)}" if missing else None

    def options(self, spec: TrainSpec) -> dict:
        """The task's own settings as a run uses them: recorded in the lineage, the checkpoint fingerprint, the
        adapter's method file and model card, and handed to the runner."""
        return {}

    def choice_reasons(self, spec: TrainSpec) -> dict:
        """Why the task's own settings (options) are what they are, for the report's "chosen because" list."""
        return {}

    def peft_task_type(self):
        from peft import TaskType

        return TaskType[self.peft_type]

    # --- heavy: training and the playground -----------------------------------------------------------------

    def read_rows(self, spec: TrainSpec) -> Rows:
        """The training and evaluation examples, with every check that makes a bad file a bad_data error."""
        raise NotImplementedError

    def load_tokenizer(self, folder: Path):
        return load_tokenizer(folder)

    def load_model(
        self, folder: Path, labels: Sequence[str], tokenizer, options: dict | None = None, loading: dict | None = None
    ) -> tuple[Any, list[str]]:
        """(model in full precision, new_modules): the modules the checkpoint had no weights for. options: the
        run's Task.options (how a classifier pools); loading: more from_pretrained arguments (a 4-bit base's
        quantization_config and device_map, quantize.py)."""
        raise NotImplementedError

    def runner(
        self,
        *,
        tokenizer,
        labels: Sequence[str] = (),
        options: dict | None = None,
        max_length: int = 128,
        batch_size: int = 16,
        device=None,
        position_limit: int | None = None,
    ) -> Runner:
        return self.runner_class(
            self,
            tokenizer=tokenizer,
            labels=labels,
            options=options or {},
            max_length=max_length,
            batch_size=batch_size,
            device=device,
            position_limit=position_limit,
        )

    def card_lines(self, options: dict) -> list[str]:
        """Lines the model card's Training section adds for this task."""
        return []

    def card_example(self, tokenizer, options: dict) -> str | None:
        """The text the model card's code gives the model, laid out as training laid out its inputs (None: the
        task's generic example)."""
        return None

    def card_use_lines(self, max_length: int, example_prompt: str | None = None) -> list[str]:
        """The model card's code that uses the loaded `model` and `tokenizer` (example_prompt: SFT's)."""
        raise NotImplementedError

    def load_predictor(self, model_path: Path, adapter_dir: Path) -> Predictor:
        raise NotImplementedError

    def predict(
        self, predictor: Predictor, texts: Sequence[str], *, max_length: int, max_new_tokens: int
    ) -> list[dict]:
        """One dict per text (the playground shows them)."""
        raise NotImplementedError


class Runner:
    """One training run's side of a task; train.fit drives it the same way for every task."""

    length_grouped = False  # batches of rows of similar length (loop.py); generation runners turn it on
    sample_rows = 0  # the first evaluation rows a final evaluation shows samples of (the baseline keeps them)

    def __init__(
        self,
        task: Task,
        *,
        tokenizer,
        labels: Sequence[str],
        options: dict,
        max_length: int,
        batch_size: int,
        device,
        position_limit: int | None,
    ):
        self.task, self.tokenizer, self.labels, self.options = task, tokenizer, list(labels), options
        self.max_length, self.batch_size, self.position_limit = max_length, batch_size, position_limit
        self.device = device if device is not None else _cpu()
        self.answer_logits_only = True  # generation tasks: the output layer on answer positions only

    def encode(self, rows: Sequence) -> list[dict]:
        raise NotImplementedError

    def refuse(self, rows: Sequence, features: Sequence[dict], role: str) -> None:
        """Raise a bad_data TrainingError for rows that cannot train as encoded (role: training, evaluation)."""

    def collate(self, features: Sequence[dict]) -> dict:
        """One padded batch of tensors, the targets under "labels"."""
        raise NotImplementedError

    def loss_units(self, batch: dict) -> int:
        """What the batch's loss averages over (rows, labelled tokens): micro-batches are weighted by it."""
        raise NotImplementedError

    def summed_loss(self, model, batch: dict):
        """The loss summed over the batch's loss_units (a tensor with a graph)."""
        raise NotImplementedError

    def loss(self, model, batch: dict):
        return self.summed_loss(model, batch) / max(self.loss_units(batch), 1)

    def evaluate(self, model, features: Sequence[dict], rows: Sequence, *, final: bool) -> dict:
        """{"metrics": {...}, "report": {...}}: final is the last epoch's (and the baseline's), which may do more."""
        raise NotImplementedError


def _cpu():
    import torch

    return torch.device("cpu")


def model_name(config: dict) -> str:
    """A model as a refusal names it: its architecture, else its model type."""
    architectures = [str(a) for a in config.get("architectures") or []]
    return architectures[0] if architectures else config.get("model_type", "this model")


def check_texts(texts: Sequence[str]) -> None:
    if len(texts) > PLAYGROUND_TEXTS:
        raise ValueError(f"at most {PLAYGROUND_TEXTS} texts at a time")


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no padding or end-of-text token, so batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token  # GPT-style tokenizers have no pad token
    return tokenizer


def max_positions(model, tokenizer) -> int | None:
    """The longest input the model accepts, so a large max_length does not index past its positions."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
    return min(limits) if limits else None


def new_modules(model, missing_keys: Sequence[str]) -> list[str]:
    """The modules whose parameters the checkpoint lacked (freshly initialised: a classifier head, a pooler)."""
    parameters = dict(model.named_parameters())
    return sorted({key.rsplit(".", 1)[0] for key in missing_keys if key in parameters})


def read_file(read: Callable[..., list], path: str, role: str, **options) -> list:
    """read(path, **options), a DataError reported as bad_data naming the file and its role (training...)."""
    try:
        return read(path, **options)
    except DataError as exc:
        raise TrainingError(BAD_DATA, f"{role} file {Path(path).name!r}: {exc}") from exc


def pad(features: Sequence[dict], keys: Sequence[str], fills: dict[str, int], padding_side: str = "right") -> dict:
    """Each key's lists padded to the batch's longest of that key (dynamic padding keeps short batches cheap),
    as long tensors; a key holding one number per row (a task id) becomes a tensor of those numbers."""
    import torch

    batch: dict[str, list] = {key: [] for key in keys if key in features[0]}
    lists = [key for key in batch if isinstance(features[0][key], list)]
    longest = {key: max(len(f[key]) for f in features) for key in lists}
    for feature in features:
        for key in batch:
            values = feature[key]
            if key in longest:
                fill = [fills.get(key, 0)] * (longest[key] - len(values))
                values = fill + values if padding_side == "left" else values + fill
            batch[key].append(values)
    return {key: torch.tensor(values, dtype=torch.long) for key, values in batch.items()}
