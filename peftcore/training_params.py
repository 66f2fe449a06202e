"""Training parameters shared by every method: the "how long and how fast" part of a job form."""

from __future__ import annotations

from .schema import Param

TRAINING_PARAMS: tuple[Param, ...] = (
    Param(
        "epochs",
        "int",
        None,
        min=1,
        max=100,
        optional=True,
        label="Epochs",
        help="How many times the model reads the whole training set. Leave empty for a budget of about 300 "
        "steps (more passes over small data, fewer over large); training stops early once the held-out score "
        "stops improving and keeps the best epoch.",
    ),
    Param(
        "learning_rate",
        "float",
        None,
        min=1e-7,
        max=1.0,
        optional=True,
        label="Learning rate",
        help="How big each learning step is. Leave empty to use the rate recommended for the chosen method. "
        "Too high makes training unstable; too low makes it learn very little.",
    ),
    Param(
        "head_learning_rate",
        "float",
        None,
        min=1e-7,
        max=1.0,
        optional=True,
        label="Head learning rate",
        help="Classification only: the rate of the new classifier head, which starts from random weights. Leave "
        "empty for 1e-2 (or the learning rate, if higher).",
    ),
    Param(
        "patience",
        "int",
        3,
        min=0,
        max=100,
        label="Early-stopping patience",
        help="Stop after this many evaluations in a row without a better held-out score (the best one is kept). "
        "0 never stops early.",
    ),
    Param(
        "batch_size",
        "int",
        None,
        min=1,
        max=1024,
        optional=True,
        label="Batch size",
        help="How many examples the model looks at per step. Leave empty for 16 below 1,000 training rows and 32 "
        "above. Larger batches are faster on a GPU but need more memory.",
    ),
    Param(
        "max_length",
        "int",
        None,
        min=8,
        max=8192,
        optional=True,
        label="Maximum length (tokens)",
        help="Texts longer than this many tokens (word pieces) are cut. Leave empty to fit 95% of your texts "
        "(measured on your data). Longer limits keep more text but need more memory and time.",
    ),
    Param(
        "eval_fraction",
        "float",
        None,
        min=0.01,
        max=0.5,
        optional=True,
        label="Evaluation share",
        help="The share of your training file held back to measure the model, used only when you do not give a "
        "separate evaluation file. Leave empty for 10%, or more for small files (up to 200 rows or a quarter), "
        "so the figure means something.",
    ),
    Param(
        "max_rows",
        "int",
        None,
        min=1,
        max=100_000_000,
        optional=True,
        label="Row limit",
        help="A row limit for quick runs: train on at most this many randomly chosen rows. Leave empty to use "
        "all rows.",
    ),
    Param(
        "seed",
        "int",
        42,
        min=0,
        max=2**31 - 1,
        label="Random seed",
        help="Fixes the randomness (shuffling, initial weights) so the same job gives the same result again.",
    ),
    Param(
        "warmup_ratio",
        "float",
        0.06,
        min=0.0,
        max=0.5,
        label="Warm-up share",
        help="The share of training during which the learning rate rises gradually from zero, which keeps the "
        "first steps stable.",
    ),
    Param(
        "answer_logits_only",
        "bool",
        True,
        label="Output layer on answers only",
        help="Generation tasks: compute the output layer (one score per vocabulary word) only from the first "
        "answer token on, since the prompt's scores are never used. Same loss, less time and memory, most of all "
        "with a large vocabulary; off computes it at every position, as a plain training script does.",
    ),
    Param(
        "group_by_length",
        "bool",
        True,
        label="Batch texts of similar length",
        help="Generation tasks: put texts of similar length in the same batch (the batches still come in random "
        "order), so less of each batch is padding: faster when lengths vary. Off draws every batch at random.",
    ),
    Param(
        "gradient_checkpointing",
        "bool",
        False,
        label="Gradient checkpointing",
        help="Keep less in memory during the backward pass by recomputing it: for long texts or large models "
        "that do not fit, at the cost of about a third more time per step.",
    ),
    Param(
        "baseline_eval",
        "bool",
        True,
        label="Measure the untrained model first",
        help="Evaluate the model before training (on up to 256 evaluation rows) so the report shows what training "
        "gained and warns when it gained nothing. Off starts training a few seconds sooner.",
    ),
    Param(
        "probe_head",
        "bool",
        False,
        label="Start the classifier head from a linear probe",
        help="Classification: before training, fit the new head on the untrained model's features of the training "
        "rows (LP-FT, arxiv.org/abs/2202.10054), so training starts from a head that already separates the labels "
        "rather than a random one. Off by default: on SST-2 at 2,000 rows it scored 82.7% against 84.7% without "
        "(docs/benchmarks.md).",
    ),
    Param(
        "density_loss",
        "float",
        0.0,
        min=0.0,
        max=10.0,
        label="Activation density loss (DEFT)",
        help="Adds a loss that makes fewer feed-forward units fire (DEFT, arxiv.org/abs/2402.01911), for cheaper "
        "inference on sparsity-aware hardware; the report shows the share that fire before and after training. "
        "0 is off; 0.1 to 1 is the useful range, higher trades accuracy for sparsity.",
    ),
    Param(
        "measure_density",
        "bool",
        False,
        label="Report activation density",
        help="Measure the share of feed-forward units that fire, before and after training, without the density "
        "loss (on whenever the loss is).",
    ),
    Param(
        "prune_ranks",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Prune this share of the adapter's ranks (Light-PEFT)",
        help="LoRA: after a short first phase, cut the least important share of all the adapter's ranks "
        "(Light-PEFT, arxiv.org/abs/2406.03792) and train on with the smaller adapter: fewer parameters, faster "
        "steps, a smaller download. The report shows what was cut and the step time saved. 0 is off; 0.5 cuts "
        "half.",
    ),
    Param(
        "prune_heads",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Prune this share of the base model's attention heads (Light-PEFT)",
        help="LoRA on a BERT-style encoder or a Llama-style decoder (Gemma, Mistral, Qwen): after a short first "
        "phase, each layer keeps its most important heads and drops this share of them (Light-PEFT, "
        "arxiv.org/abs/2406.03792), so training and inference run on a smaller model. Where query heads share a "
        "key/value head (grouped-query attention), whole groups go. The adapter carries the cut, and a merged "
        "model has the cut heads as zeros. 0 is off.",
    ),
    Param(
        "prune_channels",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Prune this share of the base model's feed-forward channels (Light-PEFT)",
        help="Like the heads: each layer keeps its most important feed-forward channels and drops this share. "
        "0 is off.",
    ),
    Param(
        "prune_after",
        "float",
        0.1,
        min=0.01,
        max=0.5,
        label="Prune after this share of the steps",
        help="Light-PEFT only: how long the first phase measures the importance of each rank, head or channel "
        "before the cut (at the latest, the end of the first epoch).",
    ),
    Param(
        "optimizer",
        "choice",
        "adamw",
        choices=("adamw", "galore", "natural_galore"),
        label="Optimiser",
        help="adamw: the usual. galore: AdamW whose state for each weight matrix lives in a low-rank projection of "
        "its gradient (GaLore, arxiv.org/abs/2403.03507), so full fine-tuning needs a fraction of AdamW's "
        "optimiser memory; it matters for methods that train whole matrices (full fine-tuning), little for "
        "adapters, whose matrices are already small. natural_galore: GaLore that first turns each projected "
        "gradient into a natural gradient, from an estimate of the loss's curvature over the last few steps "
        "(Natural GaLore, arxiv.org/abs/2410.16029); it aims to reach GaLore's loss in fewer steps, for a little "
        "more memory (the history).",
    ),
    Param(
        "galore_rank",
        "int",
        8,
        min=1,
        max=4096,
        label="GaLore rank",
        help="GaLore only: the rank of each matrix's gradient projection; the optimiser keeps about rank / the "
        "matrix's smaller side of AdamW's memory for it. The paper fine-tuned with 4 and 8.",
    ),
    Param(
        "galore_scale",
        "float",
        4.0,
        min=0.01,
        max=100.0,
        label="GaLore scale",
        help="GaLore only: the projected update is multiplied by this (the paper's fine-tuning value is 4).",
    ),
    Param(
        "galore_update_gap",
        "int",
        200,
        min=1,
        max=100000,
        label="GaLore projection refresh (steps)",
        help="GaLore only: every this many steps the projection is recomputed from the current gradient (an SVD "
        "of each matrix).",
    ),
    Param(
        "preference_loss",
        "choice",
        "dpo",
        choices=("dpo", "orpo", "kto"),
        label="Preference loss",
        help="Preference tuning only. dpo: learn to prefer the chosen answers relative to the untouched model "
        "(arxiv.org/abs/2305.18290). orpo: learn the chosen answers (as SFT) while pushing their odds above the "
        "rejected ones', with no reference model, so one forward pass a batch instead of two "
        "(arxiv.org/abs/2403.07691); good when the model has not been through SFT on such answers yet. kto: "
        "each chosen answer made more likely and each rejected one less, each on its own against a reference "
        "point (the model's drift on mismatched prompt/answer pairs), not as a pair (arxiv.org/abs/2402.01306).",
    ),
    Param(
        "dpo_beta",
        "float",
        0.1,
        min=0.001,
        max=10.0,
        label="Preference beta",
        help="Preference tuning only. DPO: how strongly the model is held near the untouched one while it learns "
        "to prefer the chosen answers; lower moves further. ORPO: the weight of the odds-ratio term next to the "
        "SFT loss. 0.1 is the usual value for both.",
    ),
    Param(
        "precision",
        "choice",
        "auto",
        choices=("auto", "fp32", "bf16"),
        label="Precision",
        help="auto: bf16 (about twice as fast, half the activation memory) on a GPU that computes in it natively, "
        "full precision (fp32) elsewhere. bf16 on a CPU works but is rarely faster.",
    ),
    Param(
        "quantize",
        "choice",
        "none",
        choices=("none", "4bit"),
        label="Load the base model in 4 bits (QLoRA)",
        help="4bit: keep the frozen base model in 4-bit NF4 (bitsandbytes), about a quarter of its memory, and "
        "train the adapter on top (QLoRA, arxiv.org/abs/2305.14314). Needs a CUDA GPU worker; LoRA, AdaLoRA and "
        "(IA)³ only.",
    ),
    Param(
        "weight_decay",
        "float",
        0.0,
        min=0.0,
        max=1.0,
        label="Weight decay",
        help="Gently pulls the trained weights towards zero to reduce over-fitting. 0 turns it off.",
    ),
)
