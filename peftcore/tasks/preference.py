"""Preference tuning of a causal language model with DPO (Rafailov et al., 2023, arxiv.org/abs/2305.18290): from
(prompt, chosen, rejected) rows, raise the chosen answer's likelihood against the rejected one's, relative to the
untouched model. The reference is the same model with the adapter switched off (peft's disable_adapter), so no
second copy of the model is held. The loss is trl's DPO "sigmoid" loss (trl's DPOTrainer computes the same on the
same pair: tests/peftcore/test_preference.py checks it against trl).

Columns: the prompt (text_column), the chosen answer (label_column) and the rejected answer (input_column, which
the other generation tasks use for an extra prompt part; here it is the third role). A template renders prompt
and answer as SFT does (peftcore/sft.py). Evaluation: the DPO loss, reward accuracy (the share of held-out pairs
whose chosen answer gains more than the rejected one, the figure that picks the best epoch) and the mean reward
margin, where a reward is beta x (the adapter's log-likelihood - the untouched model's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BAD_DATA, TrainingError
from ..sft import SftExample, encode
from . import register
from ._base import read_file
from ._generation import collate
from .sft import Sft, SftRunner

DEFAULT_BETA = 0.1  # DPO's usual strength of the pull towards the untouched model


@dataclass(frozen=True)
class PreferencePair(SftExample):
    """A prompt with its chosen answer (response, what generation is scored against) and its rejected one."""

    rejected: str = ""


class PreferenceRunner(SftRunner):
    def encode_one(self, example: PreferencePair) -> dict:
        chosen = encode(example, self.tokenizer, self.max_length, self.template)
        rejected = encode(
            SftExample(example.row, prompt=example.prompt, response=example.rejected),
            self.tokenizer,
            self.max_length,
            self.template,
        )
        longer = max(chosen, rejected, key=lambda encoded: len(encoded["input_ids"]))
        return {
            "chosen": chosen,
            "rejected": rejected,
            # the longer sequence is what length statistics, the chosen max length and length grouping read
            "input_ids": longer["input_ids"],
            "labels": longer["labels"],
            "response_tokens": min(chosen["response_tokens"], rejected["response_tokens"]),
        }

    def collate(self, features: Sequence[dict]) -> dict:
        """One batch of 2n sequences: the n chosen answers, then the n rejected ones."""
        pairs = [f["chosen"] for f in features] + [f["rejected"] for f in features]
        return collate(pairs, self.tokenizer.pad_token_id)

    def loss_units(self, batch: dict) -> int:
        return len(batch["input_ids"]) // 2  # pairs

    @property
    def beta(self) -> float:
        return float(self.options.get("beta") or DEFAULT_BETA)

    def sequence_logps(self, model, batch: dict):
        """Each sequence's summed log-likelihood of its answer tokens."""
        import torch

        labels = batch["labels"]
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        logits = model(**inputs).logits[:, -labels.shape[1] :][:, :-1].float()
        targets = labels[:, 1:]
        answer = targets.ne(-100)
        token_logps = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (token_logps * answer).sum(dim=1)

    def rewards(self, model, batch: dict):
        """(chosen rewards, rejected rewards, policy log-likelihoods): beta x the log-ratio to the untouched model;
        the rewards keep the policy's gradient."""
        import torch

        policy = self.sequence_logps(model, batch)
        with torch.no_grad(), model.disable_adapter():
            reference = self.sequence_logps(model, batch)
        chosen, rejected = (self.beta * (policy - reference)).chunk(2)
        return chosen, rejected

    def summed_loss(self, model, batch: dict):
        chosen, rejected = self.rewards(model, batch)
        return dpo_loss(chosen, rejected).sum()

    def evaluate(self, model, features: Sequence[dict], rows: Sequence, *, final: bool) -> dict:
        import torch

        was_training = model.training
        model.eval()
        losses, wins, margins = [], [], []
        with torch.no_grad():
            for first in range(0, len(features), self.batch_size):
                batch = self.collate(features[first : first + self.batch_size])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                chosen, rejected = self.rewards(model, batch)
                losses += dpo_loss(chosen, rejected).tolist()
                wins += (chosen > rejected).tolist()
                margins += (chosen - rejected).tolist()
        model.train(was_training)
        count = max(len(losses), 1)
        metrics = {
            "eval_loss": sum(losses) / count,
            "reward_accuracy": sum(wins) / count,
            "reward_margin": sum(margins) / count,
        }
        report = {"pairs": len(losses), "beta": self.beta}
        if final:  # what the model now writes for a sample of prompts, scored against the chosen answers
            scores, samples = self.generation_samples(model, rows)
            metrics.update(scores)
            report.update(samples)
        return {"metrics": metrics, "report": report}


def dpo_loss(chosen_rewards, rejected_rewards):
    """trl's DPO "sigmoid" loss per pair: -log sigmoid(chosen reward - rejected reward), the rewards already
    scaled by beta."""
    import torch.nn.functional as F

    return -F.logsigmoid(chosen_rewards - rejected_rewards)


class Preference(Sft):
    id = "preference"
    name = "Preference tuning (DPO)"
    description = (
        "Preference tuning of a causal language model (DPO): from a prompt with a chosen and a rejected answer, "
        "learn to prefer the chosen one."
    )
    column_roles = ("Prompt column", "Chosen response column")
    column_help = ("The instruction or question the model reads.", "The answer the model learns to prefer.")
    column_guesses = (("prompt", "instruction", "question"), ("chosen", "preferred", "response"))
    # input_column carries the rejected answer (required here); a template renders prompts as SFT does
    fields = ("input_column", "template")
    input_role = ("Rejected response column", "The answer the model learns to prefer less.")
    reference_by_disabling_adapter = True
    # the reward figures every epoch; at the start and the end also the generations scored against the chosen
    # answers (as SFT's; answer_match and answer_format when the answers mark a final one)
    metrics = ("eval_loss", "reward_accuracy", "reward_margin", "rouge_l", "bleu", "exact_match")
    runner_class = PreferenceRunner

    def spec_problem(self, spec: dict) -> str | None:
        missing = [key for key in ("text_column", "label_column", "input_column") if not spec.get(key)]
        if missing:
            names = {"text_column": "prompt", "label_column": "chosen", "input_column": "rejected"}
            return f"preference tuning needs three columns; missing: {', '.join(names[m] for m in missing)}"
        return super().spec_problem(spec)

    def options(self, spec) -> dict:
        return {**super().options(spec), "beta": spec.params.get("dpo_beta") or DEFAULT_BETA}

    def _read(self, path: str, fmt: str | None, spec, role: str) -> list[PreferencePair]:
        from ..sft import read_sft_examples

        def answers(column: str) -> list[SftExample]:
            return read_file(
                read_sft_examples,
                path,
                role,
                fmt=fmt,
                prompt_column=spec.text_column,
                response_column=column,
            )

        pairs = [
            PreferencePair(c.row, prompt=c.prompt, response=c.response, rejected=r.response)
            for c, r in zip(answers(spec.label_column), answers(spec.input_column))
        ]
        same = [p.row for p in pairs if p.response.strip() == p.rejected.strip()]
        if same:
            shown = ", ".join(map(str, same[:5])) + (" ..." if len(same) > 5 else "")
            raise TrainingError(
                BAD_DATA,
                f"{len(same)} {role} row(s) ({shown}) have the same chosen and rejected answer, which teaches "
                "nothing; remove those rows or give them a different rejected answer",
            )
        return pairs

    def card_lines(self, options: dict) -> list[str]:
        return [*super().card_lines(options), f"- DPO beta: {options.get('beta', DEFAULT_BETA)}"]


TASK = register(Preference())
