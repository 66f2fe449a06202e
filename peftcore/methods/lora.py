"""LoRA: learn a low-rank update to chosen weight matrices (Hu et al., 2021), through peft; with its options
DoRA, rsLoRA, the PiSSA / OLoRA / EVA / LoRA-GA starts, KaSA and aLoRA."""

from __future__ import annotations

from ..alora import PLACEHOLDER, InvocationError, activated, set_invocation
from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, register
from ._common import MethodBuildError, peft_builder, targeting_params

PARAMS = (
    Param(
        "r",
        "int",
        8,
        min=1,
        max=256,
        label="Rank",
        help="The size of the learned update. Higher ranks can learn more but train more weights; 8 suits most tasks.",
    ),
    Param(
        "lora_alpha",
        "int",
        None,
        min=1,
        max=1024,
        optional=True,
        label="Alpha",
        help="Scales the learned update (the effect is alpha divided by rank). Leave empty for twice the rank, "
        "so changing the rank keeps the update's scale.",
    ),
    Param(
        "lora_dropout",
        "float",
        0.1,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the update while training, which reduces over-fitting on small data.",
    ),
    Param(
        "use_dora",
        "bool",
        False,
        label="DoRA",
        help="Learn each weight's size and direction separately (DoRA, arxiv.org/abs/2402.09353). Often a little "
        "better at low ranks; trains slightly more weights and runs slower. Cannot be merged with PiSSA/OLoRA.",
    ),
    Param(
        "use_rslora",
        "bool",
        False,
        label="rsLoRA scaling",
        help="Scale the update by alpha divided by the square root of the rank (rsLoRA, arxiv.org/abs/2312.03732), "
        "which keeps high ranks learning well.",
    ),
    Param(
        "init",
        "choice",
        "default",
        choices=("default", "pissa", "olora", "eva", "lora_ga", "corda", "corda_kpm", "mica", "orthogonal"),
        label="Initialisation",
        help="How the update starts: 'default' starts at zero; 'pissa' (arxiv.org/abs/2404.02948) and 'olora' "
        "(arxiv.org/abs/2406.01775) start from the weight's main directions, which can learn faster. These two "
        "change the base weights in memory, so the adapter needs the exact same base model. 'eva' "
        "(arxiv.org/abs/2410.07170) starts the down-projection from the main directions of your training rows' "
        "own activations (a few batches are read before the first step). 'lora_ga' (arxiv.org/abs/2407.05000) "
        "starts both factors from the training rows' gradient, so the first steps move as full fine-tuning "
        "would; the adapter is saved as a plain LoRA of twice the rank that loads on the original model. 'corda' "
        "(arxiv.org/abs/2406.05223) starts from the weight's main directions as your training rows use them; "
        "'corda_kpm' trains the least used ones instead and keeps the main ones, which hold what the model "
        "already knows, frozen (less forgetting). Both are saved as LoRA-GA is; their factors start from the weight "
        "itself, so left empty the learning rate is a tenth of LoRA's (docs/benchmarks.md). 'mica' "
        "(arxiv.org/abs/2604.01694) fixes the up-projection to the weight's least used directions and trains only "
        "the down-projection: half the weights, and an update that leaves what the model already does alone. "
        "'orthogonal' starts both factors small and orthogonal instead of one at zero (needs an even rank).",
    ),
    Param(
        "use_kasa",
        "bool",
        False,
        label="KaSA",
        help="Knowledge-aware singular-value adaptation (KaSA, arxiv.org/abs/2412.06071): drops each weight's "
        "least important directions and learns the update in singular-value form, with the paper's two "
        "regularisers added to the loss. Changes the base weights in memory, so the adapter needs the exact "
        "same base model. Not together with DoRA.",
    ),
    Param(
        "velora",
        "bool",
        False,
        label="VeLoRA (less activation memory)",
        help="Keep a compressed copy of each adapted layer's input for the backward pass (VeLoRA, "
        "arxiv.org/abs/2405.17991): each group of 64 features is projected onto one direction, so the adapter's "
        "share of the activation memory shrinks; the gradient becomes an approximation. The saved adapter is a "
        "plain LoRA. Not together with DoRA, KaSA or aLoRA.",
    ),
    Param(
        "bd_blocks",
        "int",
        0,
        min=0,
        max=64,
        label="BD-LoRA blocks (multi-GPU serving)",
        help="For serving on several GPUs that split each layer (tensor parallelism, as in vLLM): set it to the "
        "number of GPUs, and one factor of each update becomes block-diagonal in as many blocks, so each GPU "
        "applies its share without talking to the others (BD-LoRA, arxiv.org/abs/2510.23346). Fewer weights "
        "train. 0 (or 1) is off. The rank must be a multiple of it.",
    ),
    Param(
        "activated",
        "bool",
        False,
        label="aLoRA (from the answer on)",
        help="SFT: switch the adapter on only where the answer starts (activated LoRA, arxiv.org/abs/2504.12397), "
        "so the base model reads the prompt and its work can be shared with the base model and other such "
        "adapters when serving. The switch is the ending every training prompt shares (the template's answer "
        "marker). Cannot be merged into the model's weights.",
    ),
    *(
        Param(
            key,
            "float",
            0.0,
            min=0.0,
            max=100.0,
            label=label,
            help=f"BA-LoRA (arxiv.org/abs/2408.04556), text classification: {what} 0 is off.",
        )
        for key, label, what in (
            (
                "ba_consistency",
                "BA-LoRA consistency",
                "keeps the features close to the untouched model's (one more forward pass per batch). Try 1.",
            ),
            ("ba_diversity", "BA-LoRA diversity", "keeps feature dimensions from collapsing onto each other. Try 0.1."),
            ("ba_svd", "BA-LoRA SVD", "favours a few strong feature directions over many noisy ones. Try 0.1."),
        )
    ),
    # All linear layers of each block: query and value alone (peft's BERT default) leave two thirds of the
    # block's matrices untouched and measured worse (docs/benchmarks.md).
    *targeting_params("peft's usual layers for this model (query and value in BERT)", "both", offer_usual=True),
)


def auto_alpha(params: dict, rank_key: str = "r", alpha_key: str = "lora_alpha") -> dict:
    """Alpha follows the rank unless the user set it: the update is scaled by alpha / rank, so a fixed alpha would
    silently halve the update's scale each time the rank doubles."""
    if params.get(alpha_key) is not None:
        return {}
    rank = params[rank_key]
    return {alpha_key: (2 * rank, f"twice the rank ({rank}), so the update's scale stays the same at any rank")}


def learning_rate_for(params: dict) -> tuple[float, str] | None:
    """CorDA's starts move part of each weight into the factors, so a step at LoRA's rate moves the update far
    more than from LoRA's zero start: at 1e-3 they fell to 72% (IPM) and 51% (KPM) on SST-2, at 1e-4 they reached
    80.6% and 78.3% (docs/benchmarks.md)."""
    if params.get("init") in ("corda", "corda_kpm"):
        return 1e-4, "CorDA's start moves part of each weight into the adapter: a tenth of LoRA's rate (measured)"
    return None


# CorDA builds with LoRA's own start: its covariance is read from the rows after the build (peftcore/corda.py)
_INIT = {
    "default": True,
    "corda": True,
    "corda_kpm": True,
    **{name: name for name in ("pissa", "olora", "eva", "lora_ga", "mica", "orthogonal")},
}


# LoRA options that each replace how the layer applies its update (peft's "variants": one per layer)
VARIANTS = (
    ("use_dora", "DoRA"),
    ("use_kasa", "KaSA"),
    ("velora", "VeLoRA"),
    ("activated", "aLoRA"),
    ("bd_blocks", "BD-LoRA"),
)
# BD-LoRA: the layers a tensor-parallel engine splits by rows (their A is block-diagonal) and by columns (their
# B), matched as parts of the layer's full name
_DECODER_SPLITS = (("o_proj", "down_proj"), ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"))
_BERT_SPLITS = (("output.dense",), ("query", "key", "value", "intermediate.dense"))
SPLITS = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "gemma3_text"), _DECODER_SPLITS),
    **dict.fromkeys(("bert", "roberta", "xlm-roberta"), _BERT_SPLITS),
    "distilbert": (("out_lin", "lin2"), ("q_lin", "k_lin", "v_lin", "lin1")),
}


def _block_diagonal(params: dict, model):
    """BD-LoRA's config when bd_blocks asks for it (more than one block)."""
    blocks = params.get("bd_blocks") or 0
    if blocks < 2:
        return None
    from peft import BdLoraConfig

    model_type = getattr(model.config, "model_type", "")
    if model_type not in SPLITS:
        raise MethodBuildError(
            f"LoRA: BD-LoRA needs to know how serving engines split {model_type!r} layers; it knows "
            f"{', '.join(sorted(SPLITS))}. Set the blocks to 0"
        )
    if params["r"] % blocks:
        raise MethodBuildError(f"LoRA: the rank ({params['r']}) must be a multiple of the BD-LoRA blocks ({blocks})")
    rows, columns = SPLITS[model_type]
    return BdLoraConfig(
        target_modules_bd_a=list(rows), target_modules_bd_b=list(columns), nblocks=blocks, match_strict=False
    )


def _kasa_loss(model):
    """KaSA's two regularisers (peft exposes them; the training loop must add them to the task loss)."""
    if all(getattr(c, "kasa_config", None) is None for c in model.peft_config.values()):
        return 0.0  # skip the walk over every module when KaSA is off
    return model.base_model._get_kasa_loss()


def _options(params: dict, model, total_steps) -> dict:
    kasa = None
    from peft import EvaConfig, LoraGAConfig, VeloraConfig

    # bd_blocks 1 is one block: a plain LoRA
    variants = [label for key, label in VARIANTS if params.get(key) and not (key == "bd_blocks" and params[key] < 2)]
    if len(variants) > 1:  # peft applies one variant of the layer at a time
        raise MethodBuildError(f"LoRA: {' and '.join(variants)} cannot be combined; keep one of them")
    if params.get("init") == "mica" and variants:
        raise MethodBuildError(f"LoRA: the MiCA start keeps its own layer variant; turn {variants[0]} off")
    if params.get("init") == "orthogonal" and params["r"] % 2:
        raise MethodBuildError(f"LoRA: the orthogonal start needs an even rank (got {params['r']})")
    if params.get("use_kasa"):
        from peft import KasaConfig

        kasa = KasaConfig()  # the paper's GLUE regulariser weights (beta 1e-4, gamma 1e-3)
    return dict(
        kasa_config=kasa,
        r=params["r"],
        lora_alpha=params["lora_alpha"] or 2 * params["r"],
        lora_dropout=params["lora_dropout"],
        use_dora=params.get("use_dora", False),
        use_rslora=params.get("use_rslora", False),
        init_lora_weights=_INIT[params.get("init", "default")],
        # rho 1: every layer keeps rank r (EVA may otherwise move rank between layers, and the trainable count
        # shown before the run would no longer hold)
        eva_config=EvaConfig(rho=1.0) if params.get("init") == "eva" else None,
        # peft's defaults (direction ArB2r, stable scale); the start itself is set by _data_init
        lora_ga_config=LoraGAConfig() if params.get("init") == "lora_ga" else None,
        # the real sequence is read from the training rows by _data_init (peftcore/alora.py)
        alora_invocation_tokens=list(PLACEHOLDER) if activated(params) else None,
        velora_config=VeloraConfig() if params.get("velora") else None,
        use_bdlora=_block_diagonal(params, model),
    )


def _data_init(model, params: dict, sample) -> None:
    """EVA: the down-projections from the SVD of the training rows' activations at each adapted layer (not on a
    resume: the checkpoint brings them). LoRA-GA: A and B from the training rows' gradient, taken out of the base
    weights (again on a resume, which must rebuild those weights; peftcore/lora_ga.py); CorDA the same way from the
    rows' input covariance (peftcore/corda.py). aLoRA: the invocation
    sequence, the ending every training prompt shares (again on a resume: the same rows give the same one)."""
    if activated(params):
        try:
            set_invocation(model, sample.features)
        except InvocationError as exc:
            raise MethodBuildError(str(exc)) from exc
    if params.get("init") == "eva" and not sample.resuming:
        from peft import initialize_lora_eva_weights

        initialize_lora_eva_weights(model, dataloader=sample.inputs(), show_progress_bar=False)
    elif params.get("init") == "lora_ga":
        from ..lora_ga import initialise

        initialise(model, sample.labelled(), sample.loss)
    elif params.get("init") in ("corda", "corda_kpm"):
        from ..corda import initialise as corda_start

        corda_start(model, sample.inputs(), params["init"])


METHOD = register(
    Method(
        name="lora",
        label="LoRA",
        family="reparameterised",
        description="Learns a small low-rank change to the model's attention weights; the most widely used method.",
        paper="https://arxiv.org/abs/2106.09685",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-3,  # 0.820 vs 0.792 dev accuracy at 5e-4 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder("LoraConfig", "LoRA", _options, "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        extra_loss=_kasa_loss,
        auto=auto_alpha,
        learning_rate_for=learning_rate_for,
        quantized_base=True,
        data_init=_data_init,
    )
)
