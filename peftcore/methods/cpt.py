"""Context-aware prompt tuning (CPT, Blau et al., 2024; peft's CPT): the prompt is a few training examples written
out in front of every row, as in few-shot prompting, and what trains is a small change to those examples' token
embeddings, each kept within a norm ball (the projection), never to their answers' tokens. The examples' answers
are trained on too, as the paper does, so the context keeps teaching what it shows. Causal LMs, SFT only (peft
builds CPT for CAUSAL_LM alone).

The studio has no hand-picked examples: the context is whole training rows in their order, as many as fit in
`num_virtual_tokens` tokens (context() says what happens when none fits or space is left). Each token's
type, as peft numbers them per example (1 the template before the input, 2 the input, 3 the template before the
answer, 4 the answer), comes from the rows themselves: the tokens every prompt starts with are the template
before the input, the tokens every prompt ends with the template before the answer.

peft's own loss needs the labels passed to the model, and the studio scores the rows' answers itself; the loss on
the context's answers is added once per step (Method.extra_loss) as their mean, from one pass over the context
alone (the rows come after it, so a causal model's context positions do not depend on them). peft averages the
two over all their tokens together instead. The training loss the job reports includes it; the evaluation loss
(the rows' answers only) does not."""

from __future__ import annotations

from collections.abc import Sequence

from ..schema import Param
from ..tasks import SFT
from . import Method, register
from ._common import MethodBuildError, peft_builder

ADAPTER = "default"
IGNORE_INDEX = -100
TEMPLATE_BEFORE_INPUT, INPUT, TEMPLATE_BEFORE_ANSWER, ANSWER = 1, 2, 3, 4

PARAMS = (
    Param(
        "num_virtual_tokens",
        "int",
        64,
        min=4,
        max=1024,
        label="Context length",
        help="How many tokens of your first training rows (prompts and answers) are put in front of each row as "
        "worked examples. They take up room in the maximum length and cost as much compute as their length.",
    ),
    Param(
        "opt_projection_epsilon",
        "float",
        0.1,
        min=0.001,
        max=10.0,
        label="Input change bound",
        help="How far each example input token's embedding may move (scaled by the model's width as in the paper).",
    ),
    Param(
        "opt_projection_format_epsilon",
        "float",
        0.1,
        min=0.001,
        max=10.0,
        label="Template change bound",
        help="How far each template token's embedding may move (the tokens every prompt shares).",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    # Placeholders until _data_init has read the rows: the length (all the trainable count depends on) is fixed here
    count = params["num_virtual_tokens"]
    return dict(
        cpt_token_ids=[0] * count,
        cpt_mask=[1] * count,
        cpt_tokens_type_mask=[INPUT] * count,
        opt_projection_epsilon=params["opt_projection_epsilon"],
        opt_projection_format_epsilon=params["opt_projection_format_epsilon"],
    )


def _split(feature: dict) -> tuple[list[int], list[int]] | None:
    """(prompt ids, answer ids) of an SFT row; None when its answer was cut away."""
    first = next((i for i, label in enumerate(feature["labels"]) if label != IGNORE_INDEX), None)
    if first is None:
        return None
    return list(feature["input_ids"][:first]), list(feature["input_ids"][first:])


def _shared(prompts: Sequence[list[int]], from_end: bool) -> int:
    """How many tokens every prompt starts (from_end: ends) with, leaving each at least one token of its own."""
    if len(prompts) < 2:
        return 0
    shared = min(len(p) for p in prompts) - 1
    for prompt in prompts[1:]:
        pairs = zip(reversed(prompts[0]), reversed(prompt)) if from_end else zip(prompts[0], prompt)
        same = 0
        for a, b in pairs:
            if a != b or same >= shared:
                break
            same += 1
        shared = same
    return max(shared, 0)


def _types(prompt: list[int], answer: list[int], head: int, tail: int) -> list[int]:
    """One example's CPT types, 1-4 (the shared end is cut short where it would overlap the shared start)."""
    head = min(head, len(prompt))
    tail = min(tail, len(prompt) - head)
    middle = len(prompt) - head - tail
    kinds = [TEMPLATE_BEFORE_INPUT] * head + [INPUT] * middle + [TEMPLATE_BEFORE_ANSWER] * tail
    return kinds + [ANSWER] * len(answer)


def context(
    features: Sequence[dict], count: int, bos_token_id: int | None = None, pad_token_id: int = 0
) -> tuple[list[int], list[int]]:
    """(token ids, CPT token types) of a context of exactly `count` tokens: whole examples (prompt and answer; each
    row's leading BOS left out, the real row brings its own) in the rows' order, each taken while it fits and the
    rows read again while one still fits, so few rows still fill it. When no row fits whole, the first row's
    answer is cut to at most half the context and its prompt's end fills the rest: the context always holds
    tokens that train. What is left over goes in front as padding (type 0: it neither trains nor is scored)."""
    examples = [pair for pair in map(_split, features) if pair is not None]
    if not examples:
        raise MethodBuildError("CPT: no training row has an answer left within the maximum length to show")
    if bos_token_id is not None:
        examples = [(p[1:] if p[:1] == [bos_token_id] else p, a) for p, a in examples]
    prompts = [p for p, _ in examples]
    head, tail = _shared(prompts, from_end=False), _shared(prompts, from_end=True)
    typed = [(p + a, _types(p, a, head, tail)) for p, a in examples]
    chosen: list[tuple[list[int], list[int]]] = []
    used, added = 0, True
    while added:
        added = False
        for ids, kinds in typed:
            if used + len(ids) <= count:
                chosen.append((ids, kinds))
                used, added = used + len(ids), True
    if not chosen:
        prompt, answer = examples[0]
        answer = answer[: max(count // 2, count - len(prompt))]
        kinds = _types(prompt, answer, head, tail)
        ids = prompt + answer
        chosen, used = [(ids[-count:], kinds[-count:])], count
    ids = [pad_token_id] * (count - used)
    types = [0] * (count - used)
    for number, (example_ids, kinds) in enumerate(chosen):
        ids += example_ids
        types += [4 * number + kind for kind in kinds]
    return ids, types


def _data_init(model, params: dict, sample) -> None:
    """Write the context into the config (it is saved with the adapter) and rebuild the prompt encoder from it:
    its embeddings start as the context's own, and the gradient mask that keeps the answers' tokens fixed is set
    from the types (again on a resume: the same rows give the same context, and the checkpoint then loads)."""
    from peft.tuners.cpt import CPTEmbedding

    config = model.peft_config[ADAPTER]
    tokenizer = sample.runner.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, types = context(sample.features, params["num_virtual_tokens"], tokenizer.bos_token_id, pad or 0)
    config.cpt_token_ids, config.cpt_tokens_type_mask, config.cpt_mask = ids, types, [1] * len(ids)
    old = model.prompt_encoder[ADAPTER]
    encoder = CPTEmbedding(config, model.word_embeddings).to(old.delta_embedding.weight.device)
    model.prompt_encoder[ADAPTER] = encoder


def context_answer_loss(model):
    """The mean cross-entropy of the context's answer tokens, from the context alone."""
    import torch
    import torch.nn.functional as F

    config = model.peft_config[ADAPTER]
    encoder = model.prompt_encoder[ADAPTER]
    device = encoder.delta_embedding.weight.device
    types = torch.tensor(config.cpt_tokens_type_mask, device=device)
    targets = torch.tensor(config.cpt_token_ids, device=device)
    wanted = (types[1:] > 0) & (types[1:] % 4 == 0)  # position t predicts token t + 1
    if not bool(wanted.any()):
        return 0.0
    base = model.get_base_model()
    prompt = encoder(model.prompt_tokens[ADAPTER].to(device)[None])
    dtype = base.get_input_embeddings().weight.dtype
    logits = base(inputs_embeds=prompt.to(dtype), attention_mask=torch.ones_like(types)[None]).logits[0, :-1]
    return F.cross_entropy(logits[wanted].float(), targets[1:][wanted])


METHOD = register(
    Method(
        name="cpt",
        label="CPT",
        family="prompt",
        description="Few-shot prompting that learns: your first training examples sit in front of every row, and "
        "their embeddings are tuned a little. For causal language models.",
        paper="https://arxiv.org/abs/2410.17222",
        params=PARAMS,
        tasks=(SFT,),
        recommended_learning_rate=1e-3,
        can_merge=False,
        build=peft_builder("CPTConfig", "CPT", _options, targets=False, heads=False),
        acts_on=("input",),
        how="prompts",
        data_init=_data_init,
        extra_loss=context_answer_loss,
    )
)
