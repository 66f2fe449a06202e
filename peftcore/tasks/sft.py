"""Instruction / chat supervised fine-tuning of a causal language model: learn to write the response to a prompt
(or the last assistant message of a chat), the loss on the response tokens only. Rows come as a prompt and a
response column (an input column may add to the prompt) or as one messages column; a template (peftcore/sft.py)
turns them into the text the model reads."""

from __future__ import annotations

from ..sft import AUTO, SftExample, check_template, encode, prompt_ids, render
from . import register
from ._base import model_name
from ._generation import GenerationRunner, GenerationTask


class SftRunner(GenerationRunner):
    causal = True

    @property
    def template(self) -> str:
        return self.options.get("template") or AUTO

    def encode_one(self, example: SftExample) -> dict:
        return encode(example, self.tokenizer, self.max_length, self.template)

    def reference(self, example: SftExample) -> str:
        return render(example, self.tokenizer, self.template)[1]

    def prompt(self, example: SftExample) -> list[int]:
        # the prompt keeps its end: the answer follows it
        return prompt_ids(example, self.tokenizer, self.template)[-self.max_length :]


class Sft(GenerationTask):
    id = "sft"
    name = "Instruction / chat fine-tuning (SFT)"
    description = (
        "Instruction / chat fine-tuning of a causal language model (GPT-2, Llama, Qwen, Mistral shapes): "
        "learn to write the response to a prompt."
    )
    column_roles = ("Prompt column", "Response column")
    column_help = ("The instruction or question the model reads.", "The answer the model learns to write.")
    column_guesses = (("instruction", "prompt", "question", "input"), ("response", "output", "answer"))
    fields = ("input_column", "messages_column", "template")
    peft_type = "CAUSAL_LM"
    auto_class = "AutoModelForCausalLM"
    runner_class = SftRunner
    card_prompt = "# the prompt as in training: the tokenizer's chat template, or the template named under Training"

    def architecture_refusal(self, config: dict) -> str | None:
        name, architectures = model_name(config), [str(a) for a in config.get("architectures") or []]
        if config.get("is_encoder_decoder"):
            return (
                f"{name} is an encoder-decoder model: choose the seq2seq task for it, or a causal language model "
                "(GPT-2, Llama, Qwen, Mistral) for SFT"
            )
        if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
            return (
                f"{name} is not a causal language model, so it cannot write answers; choose a GPT-2, Llama, Qwen "
                "or Mistral model for SFT"
            )
        return None

    def spec_problem(self, spec: dict) -> str | None:
        wanted = () if spec.get("messages_column") else ("text_column", "label_column")
        missing = [key for key in wanted if not spec.get(key)]
        if missing:
            return f"the job spec is missing: {', '.join(missing)} (or, for SFT, messages_column)"
        try:
            check_template(spec.get("template") or AUTO)
        except ValueError as exc:
            return str(exc)
        return None

    def options(self, spec) -> dict:
        return {"template": spec.template}

    def card_example(self, tokenizer, options: dict) -> str:
        # a question in the template's markers, exactly as training laid out every prompt
        return render(SftExample(0, prompt="What is 2 + 3?", response=""), tokenizer, options.get("template") or AUTO)[
            0
        ]

    def card_lines(self, options: dict) -> list[str]:
        return (
            [
                f"- Prompt template: `{options['template']}` (auto: the tokenizer's chat template, else the one its vocabulary is made for, else alpaca; see "
                "peftcore/sft.py)"
            ]
            if options.get("template")
            else []
        )


TASK = register(Sft())
