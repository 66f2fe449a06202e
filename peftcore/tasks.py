"""Task ids understood by the training core, and what each task's two data columns mean (standard library only:
the web process labels its form fields from here)."""

from __future__ import annotations

TEXT_CLASSIFICATION = "text-classification"
SFT = "sft"
SEQ2SEQ = "seq2seq"

TASKS: dict[str, str] = {
    TEXT_CLASSIFICATION: "Text classification: predict a label (such as positive/negative) for each text.",
    SFT: "Instruction / chat fine-tuning of a causal language model (GPT-2, Llama, Qwen, Mistral shapes): learn "
         "to write the response to a prompt.",
    SEQ2SEQ: "Sequence to sequence (T5, BART shapes): learn to write the target text for an input text.",
}
ALL_TASKS = tuple(TASKS)
# Short names for forms and tables.
TASK_NAMES: dict[str, str] = {TEXT_CLASSIFICATION: "Text classification",
                              SFT: "Instruction / chat fine-tuning (SFT)", SEQ2SEQ: "Sequence to sequence"}
GENERATION_TASKS = frozenset({SFT, SEQ2SEQ})

# What the job's text_column and label_column hold, per task: (first, second) as a form labels them.
COLUMN_ROLES: dict[str, tuple[str, str]] = {
    TEXT_CLASSIFICATION: ("Text column", "Label column"),
    SFT: ("Prompt column", "Response column"),
    SEQ2SEQ: ("Input column", "Target column"),
}


def architecture_refusal(config: dict, task: str) -> str | None:
    """Why a model (by its config.json) cannot do a generation task, or None."""
    architectures = [str(a) for a in config.get("architectures") or []]
    name = architectures[0] if architectures else config.get("model_type", "this model")
    if task == SFT:
        if config.get("is_encoder_decoder"):
            return (f"{name} is an encoder-decoder model: choose the seq2seq task for it, or a causal language model "
                    "(GPT-2, Llama, Qwen, Mistral) for SFT")
        if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
            return (f"{name} is not a causal language model, so it cannot write answers; choose a GPT-2, Llama, Qwen "
                    "or Mistral model for SFT")
    if task == SEQ2SEQ and not config.get("is_encoder_decoder"):
        return (f"{name} is not an encoder-decoder model; seq2seq needs a T5- or BART-style model (for GPT-2, Llama "
                "and the like choose SFT)")
    return None


class UnknownTaskError(ValueError):
    pass


def check_task(task: str) -> str:
    if task not in TASKS:
        raise UnknownTaskError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return task


def peft_task_type(task: str):
    """The peft TaskType for a task; SEQ_CLS makes peft train and save the classifier head (modules_to_save)."""
    from peft import TaskType

    return {TEXT_CLASSIFICATION: TaskType.SEQ_CLS, SFT: TaskType.CAUSAL_LM,
            SEQ2SEQ: TaskType.SEQ_2_SEQ_LM}[check_task(task)]
