"""The generation tasks: instruction / chat SFT of causal LMs and seq2seq (T5, BART). Loading, encoding (through
sft.py, so the loss falls on the answer only), batching, and evaluation: eval loss and perplexity every epoch;
greedy generations for a sample of eval rows, scored with ROUGE-L, BLEU and exact match, at the baseline and
at the end (generating is slow, so not every epoch)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .metrics import generation_metrics
from .sft import IGNORE_INDEX, SftExample, end_token_id, encode, encode_seq2seq, prompt_ids, render
from .tasks import SEQ2SEQ, SFT

GENERATION_ROWS = 32  # eval rows generated for in the report: enough to rank runs, few enough to be quick
MAX_NEW_TOKENS = 256
NEW_TOKEN_MARGIN = 8  # generations may run this far past the longest reference before they are cut
SAMPLE_CHARS = 500  # inputs are shortened to this in the report's sample table
MAX_LOSS_FOR_PERPLEXITY = 50.0  # exp(50) is already meaningless; beyond it the float would overflow


def load_model(model_path: Path, task: str):
    """(model, new_modules) in full precision; new_modules: modules the checkpoint had no weights for."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForCausalLM if task == SFT else AutoModelForSeq2SeqLM
    model, info = auto.from_pretrained(str(model_path), local_files_only=True, use_safetensors=True,
                                       dtype=torch.float32, output_loading_info=True)
    parameters = dict(model.named_parameters())
    return model, sorted({key.rsplit(".", 1)[0] for key in info["missing_keys"] if key in parameters})


def collate(features: Sequence[dict], pad_token_id: int, padding_side: str = "right") -> dict:
    """Pad input_ids (pad token), attention_mask (0) and labels (ignored) to the batch's longest."""
    batch: dict[str, list] = {key: [] for key in ("input_ids", "attention_mask", "labels") if key in features[0]}
    longest = {key: max(len(f[key]) for f in features) for key in batch}
    fills = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    for feature in features:
        for key in batch:
            values = feature[key]
            # labels of a seq2seq pair have their own length (the target's); the rest share the input's.
            fill = [fills[key]] * (longest[key] - len(values))
            batch[key].append(fill + values if padding_side == "left" else values + fill)
    return {key: torch.tensor(values, dtype=torch.long) for key, values in batch.items()}


def token_loss(logits: torch.Tensor, labels: torch.Tensor, task: str) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, tokens) over the labelled positions. Computed here rather than taken from the
    model's own loss, which some tuners change (AdaLoRA adds its orthogonality penalty to it)."""
    logits = logits[:, -labels.shape[1]:]  # prompt-learning methods put their virtual tokens first
    if task == SFT:  # a causal model predicts each token from the ones before it
        logits, labels = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total, int(labels.ne(IGNORE_INDEX).sum())


class GenerationTask:
    """One generation task's side of a training run (train.fit drives it, as it drives classification)."""

    def __init__(self, task: str, *, template: str = "auto"):
        self.task, self.template = task, template
        self.tokenizer = None
        self.max_length = 128
        self.batch_size = 8
        self.device = torch.device("cpu")
        self.position_limit: int | None = None

    def encode(self, rows: Sequence[SftExample]) -> list[dict]:
        if self.task == SEQ2SEQ:
            return [encode_seq2seq(e, self.tokenizer, self.max_length) for e in rows]
        return [encode(e, self.tokenizer, self.max_length, self.template) for e in rows]

    def collate(self, features: Sequence[dict]) -> dict:
        return collate(features, self.tokenizer.pad_token_id)

    def loss(self, model, batch: dict) -> torch.Tensor:
        total, tokens = token_loss(model(**batch).logits, batch["labels"], self.task)
        return total / max(tokens, 1)

    @torch.no_grad()
    def eval_loss(self, model, features: Sequence[dict]) -> float:
        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        for first in range(0, len(features), self.batch_size):
            batch = {k: v.to(self.device) for k, v in self.collate(features[first:first + self.batch_size]).items()}
            loss, count = token_loss(model(**batch).logits, batch["labels"], self.task)
            total, tokens = total + float(loss), tokens + count
        model.train(was_training)
        return total / tokens if tokens else float("nan")

    def reference(self, example: SftExample) -> str:
        return example.response if self.task == SEQ2SEQ else render(example, self.tokenizer, self.template)[1]

    def prompt(self, example: SftExample) -> list[int]:
        """The ids generation starts from (a causal model's prompt keeps its end: the answer follows it)."""
        if self.task == SEQ2SEQ:
            return self.tokenizer(example.prompt, truncation=True, max_length=self.max_length)["input_ids"]
        return prompt_ids(example, self.tokenizer, self.template)[-self.max_length:]

    @torch.no_grad()
    def generate(self, model, prompts: Sequence[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy generations, decoded without special tokens; the prompt is not part of the text returned."""
        tokenizer = self.tokenizer
        was_training = model.training
        model.eval()
        texts: list[str] = []
        if self.task == SFT and self.position_limit:
            # prompt and answer share a causal model's positions: cut prompts to leave room for the answer
            max_new_tokens = max(1, min(max_new_tokens, self.position_limit // 2))
            prompts = [ids[-(self.position_limit - max_new_tokens):] for ids in prompts]
        for first in range(0, len(prompts), self.batch_size):
            chunk = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in prompts[first:first + self.batch_size]]
            # A causal model continues the last token, so its prompts are padded on the left.
            batch = collate(chunk, tokenizer.pad_token_id, "left" if self.task == SFT else "right")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=end_token_id(tokenizer))
            if self.task == SFT:
                out = out[:, batch["input_ids"].shape[1]:]
            texts.extend(t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True))
        model.train(was_training)
        return texts

    def evaluate(self, model, features: Sequence[dict], rows: Sequence[SftExample], *, final: bool) -> dict:
        """{"metrics": {eval_loss, perplexity[, rouge_l, bleu, exact_match]}, "report": {samples, ...}}."""
        loss = self.eval_loss(model, features)
        metrics = {"eval_loss": loss, "perplexity": math.exp(min(loss, MAX_LOSS_FOR_PERPLEXITY))}
        if not final:
            return {"metrics": metrics, "report": {}}
        sample = list(rows[:GENERATION_ROWS])
        references = [self.reference(e) for e in sample]
        longest = max(len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
        max_new_tokens = min(MAX_NEW_TOKENS, longest + NEW_TOKEN_MARGIN)
        generations = self.generate(model, [self.prompt(e) for e in sample], max_new_tokens)
        scores, rouge = generation_metrics(generations, references)
        metrics.update(scores)
        samples = sorted(
            ({"row": e.row, "input": _shown_input(e)[:SAMPLE_CHARS], "reference": ref, "generation": gen,
              "rouge_l": round(r, 4)}
             for e, ref, gen, r in zip(sample, references, generations, rouge)),
            key=lambda s: (-s["rouge_l"], s["row"]))  # best first; the page shows the worst from the end
        return {"metrics": metrics, "report": {"samples": samples, "generated_rows": len(sample),
                                               "max_new_tokens": max_new_tokens}}


def _shown_input(example: SftExample) -> str:
    if example.messages:
        return next(m["content"] for m in reversed(example.messages[:-1]) if m["role"] == "user")
    return example.prompt
