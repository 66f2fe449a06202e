"""Instruction / chat supervised fine-tuning data: column mapping (nested JSON paths too), prompt templates, and
tokenisation that masks everything but the response, so the loss falls on the response tokens only.

Standard library at module level: the web process may map columns and check rows without a tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import DataError, RowReader

IGNORE_INDEX = -100  # torch's cross-entropy skips these labels
ROLES = ("system", "user", "assistant")
# Named templates for tokenizers without a chat template: (before the prompt, between prompt and response).
TEMPLATES = {
    "alpaca": (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\n",
        "\n\n### Response:\n",
    ),
    "chatml": ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
    # Gemma's turn format (its base checkpoints ship without a chat template; the instruction-tuned ones use this)
    "gemma": ("<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n"),
    "plain": ("", "\n"),
}
AUTO = "auto"  # the tokenizer's own chat template when it has one, else the named one its vocabulary is made for
# (a vocabulary holding a template's turn markers as single tokens was trained for it), else alpaca
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


def path_root(path: str) -> str:
    """The top-level column a path reads: `instances` for `instances[0].output`."""
    first = _PATH_PART.match(path or "")
    return first.group(1) if first and first.group(1) else path


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


def example_from_record(
    record: dict,
    row: int,
    *,
    prompt_column: str | None = None,
    response_column: str | None = None,
    input_column: str | None = None,
    messages_column: str | None = None,
) -> SftExample:
    """One row as an example, by a messages column or by prompt and response columns (paths allowed); an optional
    input column is appended to the prompt. DataError says what is wrong with the row."""
    if messages_column:
        return SftExample(row, messages=_messages(extract(record, messages_column), row))
    prompt, response = _text(extract(record, prompt_column)), _text(extract(record, response_column))
    if prompt is None:
        raise DataError(f"the prompt {prompt_column!r} is missing or empty", row)
    if response is None:
        raise DataError(f"the response {response_column!r} is missing or empty", row)
    extra = _text(extract(record, input_column)) if input_column else None
    return SftExample(row, prompt=f"{prompt}\n\n{extra}" if extra else prompt, response=response)


def read_sft_examples(
    path: str | Path,
    *,
    fmt: str | None = None,
    prompt_column: str | None = None,
    response_column: str | None = None,
    input_column: str | None = None,
    messages_column: str | None = None,
) -> list[SftExample]:
    """Every example of a file (see example_from_record). DataError names the first bad row, or a column the
    file does not have at all."""
    if not messages_column and not (prompt_column and response_column):
        raise DataError("name a messages column, or a prompt column and a response column")
    columns = dict(
        prompt_column=prompt_column,
        response_column=response_column,
        input_column=input_column,
        messages_column=messages_column,
    )
    reader = RowReader(path, fmt)
    examples = []
    for row, record, error in reader:
        if error is not None:
            raise error
        try:
            examples.append(example_from_record(record, row, **columns))
        except DataError:
            named = [c for c in (messages_column,) if c] or [c for c in (prompt_column, response_column) if c]
            absent = [c for c in named if path_root(c) not in reader.columns]
            if absent:  # not a bad row: the file has no such column
                raise DataError(
                    f"column {path_root(absent[0])!r} not found; columns are: {', '.join(reader.columns) or '(none)'}"
                ) from None
            raise
    if not examples:
        raise DataError("the file has no rows")
    return examples


def render(example: SftExample, tokenizer, template: str = AUTO) -> tuple[str, str]:
    """(prompt text, response text): the text before the answer, with the template's markers, and the answer."""
    if template == AUTO and getattr(tokenizer, "chat_template", None):
        messages = list(example.messages) or [
            {"role": "user", "content": example.prompt},
            {"role": "assistant", "content": example.response},
        ]
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        return prompt, messages[-1]["content"]
    before, between = TEMPLATES[auto_template(tokenizer) if template == AUTO else template]
    if example.messages:
        turns = list(example.messages[:-1])
        prompt = "\n\n".join(f"{m['role']}: {m['content']}" if len(turns) > 1 else m["content"] for m in turns)
        return before + prompt + between, example.messages[-1]["content"]
    return before + example.prompt + between, example.response


def auto_template(tokenizer) -> str:
    """The named template AUTO falls back to for a tokenizer without a chat template."""
    for name, markers in (("gemma", ["<start_of_turn>", "<end_of_turn>"]), ("chatml", ["<|im_start|>", "<|im_end|>"])):
        ids = tokenizer.convert_tokens_to_ids(markers)
        if all(i is not None and i != tokenizer.unk_token_id for i in ids):
            return name
    return "alpaca"


def end_token_id(tokenizer) -> int | None:
    """The token that ends an answer: end-of-text, or [SEP] for BERT-style vocabularies that have none."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id


def check_template(template: str) -> None:
    """ValueError naming the known templates when `template` is not one of them."""
    if template != AUTO and template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose {AUTO} or one of: {', '.join(TEMPLATES)}")


def _with_bos(ids: list[int], tokenizer) -> list[int]:
    if tokenizer.bos_token_id is not None and (not ids or ids[0] != tokenizer.bos_token_id):
        return [tokenizer.bos_token_id] + ids
    return ids


def prompt_ids(example: SftExample, tokenizer, template: str = AUTO) -> list[int]:
    """The token ids a causal model reads before it writes the answer (what generation starts from)."""
    check_template(template)
    return _with_bos(
        tokenizer(render(example, tokenizer, template)[0], add_special_tokens=False)["input_ids"], tokenizer
    )


def encode(example: SftExample, tokenizer, max_length: int, template: str = AUTO) -> dict:
    """input_ids, attention_mask and labels (IGNORE_INDEX on the prompt), cut to max_length from the end;
    `response_tokens` counts the answer tokens that survived the cut (0: nothing to learn from this row)."""
    check_template(template)
    prompt, response = render(example, tokenizer, template)
    ids = _with_bos(tokenizer(prompt, add_special_tokens=False)["input_ids"], tokenizer)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    end = end_token_id(tokenizer)
    if end is not None:
        response_ids = response_ids + [end]  # the model learns to stop
    input_ids = (ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(ids) + response_ids)[:max_length]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": labels,
        "response_tokens": sum(1 for label in labels if label != IGNORE_INDEX),
    }


def encode_seq2seq(example: SftExample, tokenizer, max_length: int) -> dict:
    """An encoder-decoder pair: the input's ids to read, the target's ids (with the tokenizer's end token) as
    labels; both cut to max_length."""
    source = tokenizer(example.prompt, truncation=True, max_length=max_length)["input_ids"]
    target = tokenizer(text_target=example.response, truncation=True, max_length=max_length)["input_ids"]
    return {"input_ids": source, "attention_mask": [1] * len(source), "labels": target, "response_tokens": len(target)}


def masked_rows(examples: Sequence[SftExample], tokenizer, max_length: int, template: str = AUTO) -> list[int]:
    """Rows whose whole response is cut away at this max length: they would train on nothing."""
    return [e.row for e in examples if encode(e, tokenizer, max_length, template)["response_tokens"] == 0]


def nested_paths(records: Sequence[dict], *, depth: int = 3, limit: int = 50) -> list[str]:
    """Paths to the text inside nested cells of some records (`instances[0].output`), for a column picker.
    Cells may be JSON text, as dataset previews store nested values; lists are read at their first item."""
    import json

    found: dict[str, None] = {}

    def walk(value: Any, path: str, level: int) -> None:
        if isinstance(value, str) and value.startswith(("[", "{")):
            try:
                value = json.loads(value)
            except ValueError:
                return
        if isinstance(value, dict) and level < depth:
            for key, item in value.items():
                if _PATH_PART.fullmatch(str(key)):
                    walk(item, f"{path}.{key}", level + 1)
        elif isinstance(value, list) and value and level < depth:
            walk(value[0], f"{path}[0]", level + 1)
        elif level and isinstance(value, (str, int, float, bool)):
            found.setdefault(path, None)

    for record in records:
        for column, value in record.items():
            walk(value, str(column), 0)
    return list(found)[:limit]
