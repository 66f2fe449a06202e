"""Sequence to sequence (T5, BART shapes): an encoder reads the input text, a decoder learns to write the target
text."""

from __future__ import annotations

from ..sft import SftExample, encode_seq2seq
from . import register
from ._base import model_name
from ._generation import GenerationRunner, GenerationTask


class Seq2SeqRunner(GenerationRunner):
    def encode_one(self, example: SftExample) -> dict:
        return encode_seq2seq(example, self.tokenizer, self.max_length)

    def reference(self, example: SftExample) -> str:
        return example.response

    def prompt(self, example: SftExample) -> list[int]:
        return self.tokenizer(example.prompt, truncation=True, max_length=self.max_length)["input_ids"]


class Seq2Seq(GenerationTask):
    id = "seq2seq"
    name = "Sequence to sequence"
    description = "Sequence to sequence (T5, BART shapes): learn to write the target text for an input text."
    column_roles = ("Input column", "Target column")
    column_help = ("The text the model reads.", "The text the model learns to write for it.")
    column_guesses = (("input", "source", "document", "text"), ("target", "summary", "output"))
    peft_type = "SEQ_2_SEQ_LM"
    auto_class = "AutoModelForSeq2SeqLM"
    runner_class = Seq2SeqRunner

    def architecture_refusal(self, config: dict) -> str | None:
        if config.get("is_encoder_decoder"):
            return None
        name = model_name(config)
        return (
            f"{name} is not an encoder-decoder model; seq2seq needs a T5- or BART-style model (for GPT-2, Llama "
            "and the like choose SFT)"
        )


TASK = register(Seq2Seq())
