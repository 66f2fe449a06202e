"""Training parameters shared by every method: the "how long and how fast" part of a job form."""

from __future__ import annotations

from .schema import Param

TRAINING_PARAMS: tuple[Param, ...] = (
    Param(
        "epochs",
        "int",
        3,
        min=1,
        max=100,
        label="Epochs",
        help="How many times the model reads the whole training set. More epochs can fit the data better but "
        "take longer and may memorise it; 3 is a good start.",
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
        "batch_size",
        "int",
        16,
        min=1,
        max=1024,
        label="Batch size",
        help="How many examples the model looks at per step. Larger batches are faster on a GPU but need more "
        "memory; lower it if training runs out of memory.",
    ),
    Param(
        "max_length",
        "int",
        128,
        min=8,
        max=8192,
        label="Maximum length (tokens)",
        help="Texts longer than this many tokens (word pieces) are cut. Longer limits keep more text but need "
        "more memory and time.",
    ),
    Param(
        "eval_fraction",
        "float",
        0.1,
        min=0.01,
        max=0.5,
        label="Evaluation share",
        help="The share of your training file held back to measure accuracy, used only when you do not give a "
        "separate evaluation file.",
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
        "weight_decay",
        "float",
        0.0,
        min=0.0,
        max=1.0,
        label="Weight decay",
        help="Gently pulls the trained weights towards zero to reduce over-fitting. 0 turns it off.",
    ),
)
