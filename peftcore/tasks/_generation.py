"""What the generation tasks (sft.py, seq2seq.py) share: prompt/response rows (read through peftcore/sft.py, so
the loss falls on the answer only), batching, the token loss, and evaluation: eval loss and perplexity every
epoch; greedy generations for a sample of eval rows, scored with ROUGE-L, BLEU and exact match, at the baseline
and at the end (generating is slow, so not every epoch).

A causal model (GenerationRunner.causal) reads prompt and answer as one sequence: its labels shift by one, its
prompts are padded on the left and its output starts with the prompt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from .. import base_pruning
from ..errors import BAD_DATA, TrainingError
from ..metrics import generation_metrics
from ..sft import IGNORE_INDEX, SftExample, end_token_id, read_sft_examples
from ..splits import holdout_split, shuffle_and_cut
from ..token_groups import labels_in_flight
from ._base import (
    PLAYGROUND_MAX_LENGTH,
    PLAYGROUND_NEW_TOKENS,
    Predictor,
    Rows,
    Runner,
    Task,
    check_texts,
    max_positions,
    new_modules,
    pad,
    read_file,
)

GENERATION_ROWS = 32  # eval rows generated for in the report: enough to rank runs, few enough to be quick
MAX_NEW_TOKENS = 256
NEW_TOKEN_MARGIN = 8  # generations may run this far past the longest reference before they are cut
SAMPLE_CHARS = 500  # inputs are shortened to this in the report's sample table
MAX_LOSS_FOR_PERPLEXITY = 50.0  # exp(50) is already meaningless; beyond it the float would overflow


class GenerationRunner(Runner):
    causal = False
    length_grouped = True  # answers vary in length far more than a classifier's texts
    sample_rows = GENERATION_ROWS

    def encode(self, rows: Sequence[SftExample]) -> list[dict]:
        return [self.encode_one(e) for e in rows]

    def encode_one(self, example: SftExample) -> dict:
        """input_ids, attention_mask, labels (IGNORE_INDEX where nothing is learned) and response_tokens."""
        raise NotImplementedError

    def reference(self, example: SftExample) -> str:
        """The answer a generation is scored against."""
        raise NotImplementedError

    def prompt(self, example: SftExample) -> list[int]:
        """The ids generation starts from."""
        raise NotImplementedError

    def refuse(self, rows: Sequence, features: Sequence[dict], role: str) -> None:
        """Rows whose whole answer the max length cuts away would train on nothing."""
        masked = [row.row for row, f in zip(rows, features) if f.get("response_tokens") == 0]
        if masked:
            shown = ", ".join(map(str, sorted(masked)[:5])) + (" ..." if len(masked) > 5 else "")
            raise TrainingError(
                BAD_DATA,
                f"{len(masked)} {role} row(s) ({shown}) have prompts so long that the maximum length of "
                f"{self.max_length} tokens leaves none of the response to learn from; raise the maximum length or "
                "shorten those prompts",
            )

    def collate(self, features: Sequence[dict]) -> dict:
        return collate(features, self.tokenizer.pad_token_id)

    def loss_units(self, batch: dict) -> int:
        """The labelled positions token_loss scores."""
        labels = batch["labels"]
        return int((labels[:, 1:] if self.causal else labels).ne(IGNORE_INDEX).sum())

    def summed_loss(self, model, batch: dict):
        return self._loss(model, batch)[0]

    def _loss(self, model, batch: dict):
        """(summed cross-entropy, tokens) over the answer positions. With answer_logits_only a causal model's
        output layer sees only the positions that predict an answer token, row by row (not the prompts, not the
        padding)."""
        keep = self.logits_to_keep(model, batch["labels"])
        if keep is None:
            return token_loss(self.logits(model, batch), batch["labels"], self.causal)
        logits, targets = self._answer_logits(model, batch, keep)
        if targets is None:  # the output layer could not be narrowed: score the last `keep` positions' logits
            return token_loss(logits, batch["labels"], self.causal)
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())

    def _answer_logits(self, model, batch: dict, keep: int):
        """(logits, targets) for just the positions whose next token is an answer token. The output layer's
        input is narrowed to those rows of the hidden states by a pre-hook, so the model's own forward (final
        norm, logit soft-capping) runs unchanged. (logits of the last `keep` positions, None) when the hook could
        not apply (no output layer found, or it saw a shape other than the batch's)."""
        import torch

        labels = batch["labels"]
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        head = base.get_output_embeddings()
        # Of the last `keep` positions, each predicts the token after it; the last one predicts nothing.
        following = torch.cat(
            [labels[:, labels.shape[1] - keep + 1 :], torch.full_like(labels[:, :1], IGNORE_INDEX)], 1
        )
        wanted = following.ne(IGNORE_INDEX)
        narrowed = []

        def narrow(_module, args):
            # every pass of the batch through the head (X-LoRA runs the model twice: a scaling pass, then its own)
            hidden = args[0]
            if hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(wanted.shape):
                return None
            narrowed.append(True)
            return (hidden[wanted], *args[1:])

        handle = head.register_forward_pre_hook(narrow) if head is not None else None
        try:
            inputs = {key: value for key, value in batch.items() if key != "labels"}
            with labels_in_flight(labels):
                logits = model(**inputs, logits_to_keep=keep).logits
        finally:
            if handle is not None:
                handle.remove()
        return (logits, following[wanted]) if narrowed else (logits, None)

    def logits(self, model, batch: dict):
        """The model's logits for a batch. A causal model is not given the labels: token_loss scores them, and
        the model's own loss would be a second pass over the whole vocabulary at every position."""
        if not self.causal:
            return model(**batch).logits  # a seq2seq model builds its decoder's input from the labels
        keep = self.logits_to_keep(model, batch["labels"])
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        with labels_in_flight(batch["labels"]):  # Context-PEFT routes tokens by them (token_groups.py)
            return model(**inputs, **({"logits_to_keep": keep} if keep else {})).logits

    def logits_to_keep(self, model, labels) -> int | None:
        """How many final positions need logits: from the position before the batch's first answer token (a
        causal model predicts each token from the one before) to the end. The output layer is the costliest
        part of a small model with a large vocabulary (Gemma 3 270M: 262k words), and the prompt's logits are
        never used. None: all of them (a seq2seq model, the option off, or a model that cannot keep fewer)."""
        if not self.causal or not self.answer_logits_only or not _keeps_logits(model):
            return None
        labelled = labels.ne(IGNORE_INDEX).any(dim=0).nonzero()
        if len(labelled) == 0:
            return None
        return labels.shape[1] - max(int(labelled[0]) - 1, 0)

    def eval_loss(self, model, features: Sequence[dict]) -> float:
        import torch

        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for first in range(0, len(features), self.batch_size):
                batch = self.collate(features[first : first + self.batch_size])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                loss, count = self._loss(model, batch)
                total, tokens = total + float(loss), tokens + count
        model.train(was_training)
        return total / tokens if tokens else float("nan")

    def generate(
        self,
        model,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        on_partial=None,
        task_ids: Sequence[int] | None = None,
    ) -> list[str]:
        """Generations, decoded without special tokens; the prompt is not part of the text returned. Greedy at
        temperature 0, else sampled (top_p: nucleus). on_partial(texts) is called with every prompt's text so far
        as tokens arrive (at most every PARTIAL_SECONDS). task_ids: each prompt's task (task_routing.py)."""
        import torch

        tokenizer = self.tokenizer
        was_training = model.training
        model.eval()
        texts: list[str] = []
        if self.causal and self.position_limit:
            # prompt and answer share a causal model's positions: cut prompts to leave room for the answer
            max_new_tokens = max(1, min(max_new_tokens, self.position_limit // 2))
            prompts = [ids[-(self.position_limit - max_new_tokens) :] for ids in prompts]
        with torch.no_grad():
            for first in range(0, len(prompts), self.batch_size):
                chunk = [
                    {"input_ids": ids, "attention_mask": [1] * len(ids)}
                    for ids in prompts[first : first + self.batch_size]
                ]
                # A causal model continues the last token, so its prompts are padded on the left.
                batch = collate(chunk, tokenizer.pad_token_id, "left" if self.causal else "right")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                if task_ids is not None:
                    batch["task_ids"] = torch.tensor(task_ids[first : first + self.batch_size], device=self.device)
                sampling = {"do_sample": False}
                if temperature > 0:
                    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
                streamer = None
                if on_partial is not None:
                    streamer = PartialStreamer(tokenizer, len(texts), len(chunk), texts, on_partial, len(prompts))
                out = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    num_beams=1,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=end_token_id(tokenizer),
                    streamer=streamer,
                    **sampling,
                )
                if self.causal:
                    out = out[:, batch["input_ids"].shape[1] :]
                texts.extend(t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True))
        model.train(was_training)
        return texts

    def evaluate(self, model, features: Sequence[dict], rows: Sequence[SftExample], *, final: bool) -> dict:
        """{"metrics": {eval_loss, perplexity[, rouge_l, bleu, exact_match]}, "report": {samples, ...}}."""
        loss = self.eval_loss(model, features)
        metrics = {"eval_loss": loss, "perplexity": math.exp(min(loss, MAX_LOSS_FOR_PERPLEXITY))}
        if not final:
            return {"metrics": metrics, "report": {}}
        tasks = [f["task_ids"] for f in features[:GENERATION_ROWS]] if features and "task_ids" in features[0] else None
        scores, report = self.generation_samples(model, rows, tasks)
        return {"metrics": {**metrics, **scores}, "report": report}

    def generation_samples(
        self, model, rows: Sequence[SftExample], tasks: list[int] | None = None
    ) -> tuple[dict, dict]:
        """(scores, report part): greedy generations for the first GENERATION_ROWS rows, scored against their
        references with ROUGE-L, BLEU and exact match; the report lists them best first. tasks: those rows' task
        ids (a task per group, task_routing.py)."""
        sample = list(rows[:GENERATION_ROWS])
        references = [self.reference(e) for e in sample]
        longest = max(len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
        max_new_tokens = min(MAX_NEW_TOKENS, longest + NEW_TOKEN_MARGIN)
        generations = self.generate(model, [self.prompt(e) for e in sample], max_new_tokens, task_ids=tasks)
        scores, rouge = generation_metrics(generations, references)
        pattern = scores.pop("answer_pattern", None)  # a string: the report's, not a metric
        samples = sorted(
            (
                {
                    "row": e.row,
                    "input": _shown_input(e)[:SAMPLE_CHARS],
                    "reference": ref,
                    "generation": gen,
                    "rouge_l": round(r, 4),
                }
                for e, ref, gen, r in zip(sample, references, generations, rouge)
            ),
            key=lambda s: (-s["rouge_l"], s["row"]),
        )  # best first; the page shows the worst from the end
        return scores, {
            "samples": samples,
            "generated_rows": len(sample),
            "max_new_tokens": max_new_tokens,
            **({"answer_pattern": pattern} if pattern else {}),
        }


class GenerationTask(Task):
    generative = True
    column_paths = True
    fields = ("input_column",)
    # always reported; answer_match and answer_format too when the references mark a final answer (metrics.py)
    metrics = ("eval_loss", "perplexity", "rouge_l", "bleu", "exact_match")
    runner_class = GenerationRunner
    card_prompt = "# an input as in training"  # the model card's comment on the text its example gives the model

    def read_rows(self, spec) -> Rows:
        rows = shuffle_and_cut(
            self._read(spec.train_file, spec.train_format, spec, "training"),
            seed=spec.params["seed"],
            max_rows=spec.params["max_rows"],
        )
        if spec.eval_file:
            return Rows(rows, self._read(spec.eval_file, spec.eval_format, spec, "evaluation"))
        if len(rows) < 2:
            raise TrainingError(
                BAD_DATA,
                "the training file has one row; at least 2 are needed to hold some out "
                "for evaluation (or give an evaluation file)",
            )
        return Rows(*holdout_split(rows, spec.params["eval_fraction"]))

    def _read(self, path: str, fmt: str | None, spec, role: str) -> list[SftExample]:
        def field(name: str) -> str | None:
            return getattr(spec, name) if name in self.fields else None

        return read_file(
            read_sft_examples,
            path,
            role,
            fmt=fmt,
            prompt_column=spec.text_column or None,
            response_column=spec.label_column or None,
            input_column=field("input_column"),
            messages_column=field("messages_column"),
        )

    def load_model(
        self, folder: Path, labels: Sequence[str], tokenizer, options: dict | None = None, loading: dict | None = None
    ):
        import torch
        import transformers

        auto = getattr(transformers, self.auto_class)
        model, info = auto.from_pretrained(
            str(folder),
            local_files_only=True,
            use_safetensors=True,
            dtype=torch.float32,
            output_loading_info=True,
            **(loading or {}),
        )
        return model, new_modules(model, info["missing_keys"])

    def card_use_lines(self, max_length: int, example_prompt: str | None = None) -> list[str]:
        answer_only = ['output = output[:, inputs["input_ids"].shape[1]:]  # the answer follows the prompt']
        text = example_prompt if example_prompt is not None else "Summarise: the studio trains adapters."
        return [
            self.card_prompt,
            f'inputs = tokenizer([{json.dumps(text, ensure_ascii=False)}], return_tensors="pt")',
            "with torch.no_grad():",
            "    output = model.generate(**inputs, max_new_tokens=64, do_sample=False)",
            *(answer_only if self.runner_class.causal else []),
            "print(tokenizer.batch_decode(output, skip_special_tokens=True))",
        ]

    def load_predictor(self, model_path: Path, adapter_dir: Path) -> Predictor:
        import torch

        from ..adapters import load_adapter
        from ..start_from import adapter_method

        adapter_dir = Path(adapter_dir)
        recorded = adapter_method(adapter_dir) or {}
        options = {key: recorded[key] for key in self.fields if recorded.get(key)}  # the template trained with
        tokenizer = self.load_tokenizer(adapter_dir)
        model, _ = self.load_model(Path(model_path), [], tokenizer)
        model = load_adapter(model, adapter_dir)
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        runner = self.runner(
            tokenizer=tokenizer,
            options=options,
            batch_size=8,
            device=next(model.parameters()).device,
            position_limit=max_positions(model, tokenizer),
        )
        cut = base_pruning.read_plan(adapter_dir) is not None
        return Predictor(self, model, tokenizer, runner=runner, base_cut=cut)

    def predict(
        self,
        predictor: Predictor,
        texts: Sequence[str],
        *,
        max_length: int = 512,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        compare_base: bool = False,
        on_partial=None,
    ) -> list[dict]:
        """Per text: {"generation": the adapter's answer[, "base_generation": the base model's]}, the prompt built
        as in training; greedy at temperature 0, else sampled. on_partial({"generations": [...][,
        "base_generations": [...]]}) reports the texts so far while they are written (the base model's first)."""
        if not texts:
            return []
        check_texts(texts)
        runner = predictor.runner
        runner.max_length = max(1, min(int(max_length), PLAYGROUND_MAX_LENGTH))
        prompts = [runner.prompt(SftExample(0, prompt=text, response="-")) for text in texts]
        max_new_tokens = max(1, min(int(max_new_tokens), PLAYGROUND_NEW_TOKENS))
        sampling = {"temperature": max(0.0, float(temperature)), "top_p": min(max(float(top_p), 1e-3), 1.0)}
        model, base = predictor.model, None
        # the base model is the same weights with the adapter switched off (peft adapters; others have no switch),
        # unless the adapter cut them (then no answer is better than the cut model's under the base model's name)
        compare_base = compare_base and hasattr(model, "disable_adapter") and not predictor.base_cut

        def stream(key: str, fixed: dict):
            return None if on_partial is None else (lambda texts: on_partial({**fixed, key: texts}))

        if compare_base:
            with model.disable_adapter():
                base = runner.generate(
                    model, prompts, max_new_tokens, **sampling, on_partial=stream("base_generations", {})
                )
        fixed = {"base_generations": base} if base is not None else {}
        answers = runner.generate(model, prompts, max_new_tokens, **sampling, on_partial=stream("generations", fixed))
        if base is None:
            return [{"generation": answer} for answer in answers]
        return [{"generation": answer, "base_generation": before} for answer, before in zip(answers, base)]


PARTIAL_SECONDS = 0.5  # how often a streamed generation reports its text so far


class PartialStreamer:
    """A transformers streamer for a batch of prompts: collects each row's new tokens and reports every prompt's
    text so far (the finished chunks before this one, this chunk's partial rows, empty ones after) through
    on_partial, at most every PARTIAL_SECONDS. transformers' own streamers take one row only."""

    def __init__(self, tokenizer, first: int, rows: int, done: list[str], on_partial, total: int):
        self.tokenizer, self.first, self.done, self.on_partial, self.total = tokenizer, first, done, on_partial, total
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.prompt_seen, self.last = False, 0.0

    def put(self, value) -> None:
        import time

        if not self.prompt_seen:  # the first call hands over the prompts
            self.prompt_seen = True
            return
        for row, token in zip(self.ids, value.reshape(len(self.ids), -1).tolist()):
            row.extend(token)
        if time.monotonic() - self.last >= PARTIAL_SECONDS:
            self.last = time.monotonic()
            self.report()

    def end(self) -> None:
        self.report()

    def report(self) -> None:
        texts = [t.strip() for t in self.tokenizer.batch_decode(self.ids, skip_special_tokens=True)]
        self.on_partial(self.done[: self.first] + texts + [""] * (self.total - self.first - len(texts)))


_KEEPS_LOGITS: dict[type, bool] = {}


def _keeps_logits(model) -> bool:
    """Whether the model's forward takes logits_to_keep (transformers' causal LMs do)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kind = type(base)
    if kind not in _KEEPS_LOGITS:
        _KEEPS_LOGITS[kind] = "logits_to_keep" in inspect.signature(kind.forward).parameters
    return _KEEPS_LOGITS[kind]


def collate(features: Sequence[dict], pad_token_id: int, padding_side: str = "right") -> dict:
    """Pad input_ids (pad token), attention_mask (0) and labels (ignored) to the batch's longest; a seq2seq
    pair's labels have their own length (the target's)."""
    return pad(
        features,
        ("input_ids", "attention_mask", "labels", "task_ids"),
        {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX},
        padding_side,
    )


def token_loss(logits, labels, causal: bool):
    """(summed cross-entropy, tokens) over the labelled positions. Computed here rather than taken from the
    model's own loss, which some tuners change (AdaLoRA adds its orthogonality penalty to it)."""
    import torch.nn.functional as F

    logits = logits[:, -labels.shape[1] :]  # prompt-learning methods put their virtual tokens first
    labels = labels[:, -logits.shape[1] :]  # logits kept for the last positions only (logits_to_keep)
    if causal:  # a causal model predicts each token from the ones before it
        logits, labels = logits[:, :-1], labels[:, 1:]
    # Only the labelled positions go through the float32 softmax: prompts and padding would cost a full-vocabulary
    # pass each and add nothing to the sum.
    labelled = labels.ne(IGNORE_INDEX)
    total = F.cross_entropy(logits[labelled].float(), labels[labelled], reduction="sum")
    return total, int(labelled.sum())


def _shown_input(example: SftExample) -> str:
    if example.messages:
        return next(m["content"] for m in reversed(example.messages[:-1]) if m["role"] == "user")
    return example.prompt
