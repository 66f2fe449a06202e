"""Preference tuning of a causal language model with DPO (Rafailov et al., 2023, arxiv.org/abs/2305.18290), ORPO
(Hong et al., 2024, arxiv.org/abs/2403.07691) or KTO (Ethayarajh et al., 2024, arxiv.org/abs/2402.01306): from
(prompt, chosen, rejected) rows, raise the chosen answer's likelihood against the rejected one's.

DPO measures that gain relative to the untouched model: the reference is the same model with the adapter switched
off (peft's disable_adapter), so no second copy of the model is held. Its loss is trl's DPO "sigmoid" loss (trl's
DPOTrainer computes the same on the same pair: tests/peftcore/test_preference.py checks it against trl).
ORPO needs no reference (one forward pass a batch instead of two): the chosen answer's SFT loss plus beta x the
log-sigmoid of the odds ratio between the two answers' mean token likelihoods; the odds-ratio term is checked
against trl's ORPOTrainer.odds_ratio_loss. Its SFT term is each pair's mean over the chosen answer's tokens
(trl's is a token mean over the whole batch and counts the prompt's tokens too).
KTO scores each answer on its own (the chosen as desirable, the rejected as undesirable) against a reference
point, the policy's KL from the untouched model estimated on mismatched pairs of the batch (each prompt with the
next pair's answer), as trl's KTOTrainer does; trl has no standalone KTO loss function to check against, so its
formula is transcribed (kto_loss) and tested for its defining properties.

Columns: the prompt (text_column), the chosen answer (label_column) and the rejected answer (input_column, which
the other generation tasks use for an extra prompt part; here it is the third role). A template renders prompt
and answer as SFT does (peftcore/sft.py). Evaluation: the loss, reward accuracy (the share of held-out pairs
whose chosen answer scores above the rejected one, the figure that picks the best epoch) and the mean reward
margin, where a reward is beta x (the adapter's log-likelihood - the untouched model's) for DPO and KTO and
beta x the mean token log-likelihood for ORPO (trl's definitions).
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

DEFAULT_BETA = 0.1  # DPO's usual strength of the pull towards the untouched model; ORPO's paper and trl use 0.1 too
LOSSES = ("dpo", "orpo")


def sequences(feature: dict) -> list[dict]:
    """The token sequences an encoded row holds: a preference pair's chosen then rejected answer (each with the
    prompt), any other row itself. What a method that reads the rows' tokens (Trainable Tokens, Cartridge) reads."""
    if isinstance(feature.get("chosen"), dict):
        return [feature["chosen"], feature["rejected"]]
    return [feature]


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

    @property
    def loss_kind(self) -> str:
        return self.options.get("loss") or "dpo"

    def sequence_logps(self, model, batch: dict, *, mean: bool = False):
        """Each sequence's summed (mean: per-token mean) log-likelihood of its answer tokens."""
        import torch

        labels = batch["labels"]
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        logits = model(**inputs).logits[:, -labels.shape[1] :][:, :-1].float()
        targets = labels[:, 1:]
        answer = targets.ne(-100)
        token_logps = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        summed = (token_logps * answer).sum(dim=1)
        return summed / answer.sum(dim=1).clamp(min=1) if mean else summed

    def rewards(self, model, batch: dict):
        """(chosen rewards, rejected rewards, per-pair loss); the loss keeps the policy's gradient.
        DPO: a reward is beta x the log-ratio to the untouched model; ORPO: beta x the mean token log-likelihood."""
        import torch

        if self.loss_kind == "orpo":
            chosen, rejected = self.sequence_logps(model, batch, mean=True).chunk(2)
            losses = -chosen - self.beta * orpo_odds_ratio(chosen, rejected)
            return (self.beta * chosen).detach(), (self.beta * rejected).detach(), losses
        policy = self.sequence_logps(model, batch)
        with torch.no_grad(), model.disable_adapter():
            reference = self.sequence_logps(model, batch)
        chosen, rejected = (policy - reference).chunk(2)  # the log-ratios to the untouched model
        if self.loss_kind == "kto":
            losses = kto_loss(chosen, rejected, self.kl_estimate(model, batch), self.beta)
            return (self.beta * chosen).detach(), (self.beta * rejected).detach(), losses
        chosen, rejected = self.beta * chosen, self.beta * rejected
        return chosen, rejected, dpo_loss(chosen, rejected)

    def kl_estimate(self, model, batch: dict):
        """KTO's reference point: the policy's KL from the untouched model, estimated as trl does, on mismatched
        pairs (each prompt with the next pair's chosen answer), averaged, clamped at 0 and not differentiated.
        A lone pair has no other answer to borrow: 0."""
        import torch

        if len(batch["input_ids"]) < 4:
            return torch.zeros((), device=batch["input_ids"].device)
        mismatched = mismatched_pairs(batch, self.tokenizer.pad_token_id)
        with torch.no_grad():
            policy = self.sequence_logps(model, mismatched)
            with model.disable_adapter():
                reference = self.sequence_logps(model, mismatched)
        return (policy - reference).mean().clamp(min=0)

    def summed_loss(self, model, batch: dict):
        return self.rewards(model, batch)[2].sum()

    def evaluate(self, model, features: Sequence[dict], rows: Sequence, *, final: bool) -> dict:
        import torch

        was_training = model.training
        model.eval()
        losses, wins, margins = [], [], []
        with torch.no_grad():
            for first in range(0, len(features), self.batch_size):
                batch = self.collate(features[first : first + self.batch_size])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                chosen, rejected, loss = self.rewards(model, batch)
                losses += loss.tolist()
                wins += (chosen > rejected).tolist()
                margins += (chosen - rejected).tolist()
        model.train(was_training)
        count = max(len(losses), 1)
        metrics = {
            "eval_loss": sum(losses) / count,
            "reward_accuracy": sum(wins) / count,
            "reward_margin": sum(margins) / count,
        }
        report = {"pairs": len(losses), "beta": self.beta, "loss": self.loss_kind}
        if final:  # what the model now writes for a sample of prompts, scored against the chosen answers
            scores, samples = self.generation_samples(model, rows)
            metrics.update(scores)
            report.update(samples)
        return {"metrics": metrics, "report": report}


def mismatched_pairs(batch: dict, pad_token_id: int) -> dict:
    """Each of the batch's n chosen sequences' prompt followed by the next one's answer (the last borrows the
    first's), padded on the right like collate's."""
    chosen = batch["input_ids"].shape[0] // 2
    ids, labels, real = batch["input_ids"][:chosen], batch["labels"][:chosen], batch["attention_mask"][:chosen].bool()
    answer = labels.ne(-100)
    rows = [
        {
            "input_ids": [*ids[i][real[i] & ~answer[i]].tolist(), *ids[j][answer[j]].tolist()],
            "labels": [-100] * int((real[i] & ~answer[i]).sum()) + ids[j][answer[j]].tolist(),
        }
        for i, j in ((i, (i + 1) % chosen) for i in range(chosen))
    ]
    for row in rows:
        row["attention_mask"] = [1] * len(row["input_ids"])
    return {key: value.to(ids.device) for key, value in collate(rows, pad_token_id).items()}


def kto_loss(chosen_logratios, rejected_logratios, kl, beta: float):
    """KTO's loss per pair (Ethayarajh et al. 2024, eq. 7; trl's KTOTrainer "kto" loss with both weights 1): the
    chosen answer as desirable, 1 - sigmoid(beta (log-ratio - KL)), and the rejected as undesirable,
    1 - sigmoid(beta (KL - log-ratio)), averaged over the pair's two answers (trl averages over answers)."""
    import torch.nn.functional as F

    desirable = 1 - F.sigmoid(beta * (chosen_logratios - kl))
    undesirable = 1 - F.sigmoid(beta * (kl - rejected_logratios))
    return (desirable + undesirable) / 2


def dpo_loss(chosen_rewards, rejected_rewards):
    """trl's DPO "sigmoid" loss per pair: -log sigmoid(chosen reward - rejected reward), the rewards already
    scaled by beta."""
    import torch.nn.functional as F

    return -F.logsigmoid(chosen_rewards - rejected_rewards)


def orpo_odds_ratio(chosen_logps, rejected_logps):
    """ORPO's log-sigmoid of the log odds ratio per pair, from each answer's mean token log-likelihood (trl's
    ORPOTrainer.odds_ratio_loss before its beta; the paper's eq. 7)."""
    import torch
    import torch.nn.functional as F

    def log1mexp(x):  # log(1 - exp(x)), stable on both sides of -ln 2
        return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))

    # a mean log-likelihood of exactly 0 (every token certain) would make log(1 - 1) = -inf and its gradient NaN
    chosen_logps, rejected_logps = chosen_logps.clamp(max=-1e-6), rejected_logps.clamp(max=-1e-6)
    log_odds = (chosen_logps - rejected_logps) - (log1mexp(chosen_logps) - log1mexp(rejected_logps))
    return F.logsigmoid(log_odds)


class Preference(Sft):
    id = "preference"
    name = "Preference tuning (DPO, ORPO, KTO)"
    description = (
        "Preference tuning of a causal language model (DPO, ORPO or KTO): from a prompt with a chosen and a rejected "
        "answer, learn to prefer the chosen one."
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
        return {
            **super().options(spec),
            "beta": spec.params.get("dpo_beta") or DEFAULT_BETA,
            "loss": spec.params.get("preference_loss") or "dpo",
        }

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
        loss = (options.get("loss") or "dpo").upper()
        return [*super().card_lines(options), f"- Preference loss: {loss}, beta {options.get('beta', DEFAULT_BETA)}"]


TASK = register(Preference())
