"""Instruction / chat supervised fine-tuning data: column mapping (nested JSON paths too), prompt templates, and
tokenisation that masks everything but the response, so the loss falls on the response tokens only.

Standard library at module level: the web process may map columns and check rows without a tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .formats import DataError, RowReader

IGNORE_INDEX = -100  # torch's cross-entropy skips these labels
ROLES = ("system", "user", "assistant")
# Named templates for tokenizers without a chat template: (before the prompt, between prompt and response).
TEMPLATES = {
    "alpaca": ("Below is an instruction that describes a task. Write a response that appropriately completes the "
               "request.\n\n### Instruction:\n", "\n\n### Response:\n"),
    "chatml": ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
    "plain": ("", "\n"),
}
AUTO = "auto"  # the tokenizer's own chat template when it has one, else alpaca
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class SftExample:
    row: int
    prompt: str = ""
    response: str = ""
    messages: tuple = field(default=())  # ({"role", "content"}, ...) for chat data; the last is the answer


def extract(record: Any, path: str) -> Any:
    """A value at a path such as `instances[0].output` or `meta.lang` (None when any part is missing)."""
    value = record
    for name, index in _PATH_PART.findall(path):
        if name:
            if not isinstance(value, dict) or name not in value:
                return None
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
    return value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text if text.strip() else None


def _messages(value: Any, row: int) -> tuple:
    if not isinstance(value, list) or not value:
        raise DataError("the messages column must hold a list of {role, content} objects", row)
    messages = []
    for i, message in enumerate(value, 1):
        if not isinstance(message, dict) or message.get("role") not in ROLES or _text(message.get("content")) is None:
            raise DataError(f"message {i} needs a role ({', '.join(ROLES)}) and a non-empty content", row)
        messages.append({"role": message["role"], "content": str(message["content"])})
    if messages[-1]["role"] != "assistant":
        raise DataError("the last message must be the assistant's answer, the part the model learns", row)
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise DataError("the answer needs a user message before it to answer", row)
    return tuple(messages)


def read_sft_examples(path: str | Path, *, fmt: str | None = None, prompt_column: str | None = None,
                      response_column: str | None = None, input_column: str | None = None,
                      messages_column: str | None = None) -> list[SftExample]:
    """Every example of a file, by a messages column or by prompt and response columns (paths allowed); an
    optional input column is appended to the prompt. DataError names the first bad row."""
    if not messages_column and not (prompt_column and response_column):
        raise DataError("name a messages column, or a prompt column and a response column")
    examples = []
    for row, record, error in RowReader(path, fmt):
        if error is not None:
            raise error
        if messages_column:
            examples.append(SftExample(row, messages=_messages(extract(record, messages_column), row)))
            continue
        prompt, response = _text(extract(record, prompt_column)), _text(extract(record, response_column))
        if prompt is None:
            raise DataError(f"the prompt {prompt_column!r} is missing or empty", row)
        if response is None:
            raise DataError(f"the response {response_column!r} is missing or empty", row)
        extra = _text(extract(record, input_column)) if input_column else None
        examples.append(SftExample(row, prompt=f"{prompt}\n\n{extra}" if extra else prompt, response=response))
    if not examples:
        raise DataError("the file has no rows")
    return examples


def render(example: SftExample, tokenizer, template: str = AUTO) -> tuple[str, str]:
    """(prompt text, response text): the text before the answer, with the template's markers, and the answer."""
    if template == AUTO and getattr(tokenizer, "chat_template", None):
        messages = list(example.messages) or [{"role": "user", "content": example.prompt},
                                              {"role": "assistant", "content": example.response}]
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        return prompt, messages[-1]["content"]
    before, between = TEMPLATES["alpaca" if template == AUTO else template]
    if example.messages:
        turns = [m for m in example.messages[:-1]]
        prompt = "\n\n".join(f"{m['role']}: {m['content']}" if len(turns) > 1 else m["content"] for m in turns)
        return before + prompt + between, example.messages[-1]["content"]
    return before + example.prompt + between, example.response


def encode(example: SftExample, tokenizer, max_length: int, template: str = AUTO) -> dict:
    """input_ids, attention_mask and labels (IGNORE_INDEX on the prompt), cut to max_length from the end;
    `response_tokens` counts the answer tokens that survived the cut (0: nothing to learn from this row)."""
    if template != AUTO and template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; known: {AUTO}, {', '.join(TEMPLATES)}")
    prompt, response = render(example, tokenizer, template)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]  # the model learns to stop
    if tokenizer.bos_token_id is not None and (not prompt_ids or prompt_ids[0] != tokenizer.bos_token_id):
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels,
            "response_tokens": sum(1 for label in labels if label != IGNORE_INDEX)}


def masked_rows(examples: Sequence[SftExample], tokenizer, max_length: int, template: str = AUTO) -> list[int]:
    """Rows whose whole response is cut away at this max length: they would train on nothing."""
    return [e.row for e in examples if encode(e, tokenizer, max_length, template)["response_tokens"] == 0]
