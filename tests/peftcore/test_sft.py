"""SFT data: nested column mapping, templates, response-only labels and the rows a max length would empty."""

import json

import pytest

from peftcore.formats import DataError
from peftcore.sft import IGNORE_INDEX, SftExample, encode, end_token_id, extract, masked_rows, read_sft_examples, render
from peftcore.tasks import load_tokenizer

SEED_TASKS = "instructions/seed_tasks.jsonl"


def write_jsonl(tmp_path, rows):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_paths_reach_into_nested_json():
    record = {"instruction": "Add", "instances": [{"input": "2 3", "output": "5"}], "meta": {"lang": "en"}}
    assert extract(record, "instances[0].output") == "5" and extract(record, "meta.lang") == "en"
    assert extract(record, "instances[1].output") is None and extract(record, "nope.x") is None


def test_the_shared_seed_tasks_map_to_prompt_and_response(shared_data):
    examples = read_sft_examples(
        shared_data / SEED_TASKS,
        prompt_column="instruction",
        response_column="instances[0].output",
        input_column="instances[0].input",
    )
    assert len(examples) == 175 and all(e.prompt and e.response for e in examples)
    with_input = [e for e in examples if "\n\n" in e.prompt]
    assert with_input  # tasks with an input carry it after the instruction


def test_bad_rows_are_named(tmp_path):
    path = write_jsonl(tmp_path, [{"q": "hi", "a": "hello"}, {"q": "x", "a": ""}])
    with pytest.raises(DataError) as raised:
        read_sft_examples(path, prompt_column="q", response_column="a")
    assert raised.value.row == 2 and "response 'a'" in str(raised.value)
    chat = write_jsonl(tmp_path, [{"m": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match="last message must be the assistant"):
        read_sft_examples(chat, messages_column="m")
    with pytest.raises(DataError, match="name a messages column"):
        read_sft_examples(chat, prompt_column="m")


def test_only_the_response_is_learned(tiny_shape):
    tokenizer = load_tokenizer(tiny_shape("gpt2"))
    example = SftExample(1, prompt="what is two plus three", response="five")
    encoded = encode(example, tokenizer, max_length=128, template="alpaca")
    prompt, response = render(example, tokenizer, "alpaca")
    assert "### Instruction:\nwhat is two plus three" in prompt and response == "five"
    learned = [t for t in encoded["labels"] if t != IGNORE_INDEX]
    # The answer ends with the end token ([SEP] for this BERT vocabulary, which has no end-of-text token).
    expected = tokenizer("five", add_special_tokens=False)["input_ids"] + [end_token_id(tokenizer)]
    assert learned == expected == encoded["input_ids"][-len(expected) :]
    assert encoded["response_tokens"] == len(expected) and len(encoded["attention_mask"]) == len(encoded["input_ids"])


def test_the_tokenizers_chat_template_is_used_when_it_has_one(tiny_shape):
    tokenizer = load_tokenizer(tiny_shape("llama"))
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    example = SftExample(
        1,
        messages=(
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ),
    )
    assert render(example, tokenizer) == ("<system>be brief<user>hi<assistant>", "hello")
    with pytest.raises(ValueError, match="unknown template"):
        encode(example, tokenizer, 64, template="vicuna-9000")


def test_a_max_length_that_cuts_every_answer_is_caught_before_training(tiny_shape):
    tokenizer = load_tokenizer(tiny_shape("gpt2"))
    long_prompt = SftExample(7, prompt="word " * 100, response="yes")
    short = SftExample(8, prompt="hi", response="hello")
    assert masked_rows([long_prompt, short], tokenizer, max_length=32, template="plain") == [7]
    assert masked_rows([long_prompt, short], tokenizer, max_length=512, template="plain") == []


def test_an_answer_with_no_question_is_refused(tmp_path):
    path = write_jsonl(tmp_path, [{"m": [{"role": "assistant", "content": "hello"}]}])
    with pytest.raises(DataError, match="needs a user message"):
        read_sft_examples(path, messages_column="m")
