"""A merged export: the adapter folded into its base model's weights and saved as one plain safetensors model
folder, with a model card and, for a causal language model, an Ollama Modelfile. It loads with transformers alone
(no peft, no base model) and writes what the adapter writes.

Only methods whose update is a change of the existing weights can be folded (Method.can_merge: LoRA and its
family, IA3, OFT, ...); prompt methods and added modules cannot.
"""

from __future__ import annotations

import json
from pathlib import Path

from .alora import activated
from .predict import adapter_task, load_predictor
from .sft import AUTO, SftExample, render
from .start_from import adapter_method

MODELFILE = "Modelfile"
CARD = "README.md"


class MergeError(ValueError):
    """The adapter cannot be merged; the message says why."""


def merge_refusal(
    method_name: str, task: str, adapter_dir: Path | None = None, method_params: dict | None = None
) -> str | None:
    """Why this adapter cannot be merged (None: it can). adapter_dir: checked for a peft adapter too."""
    from .methods import UnknownMethodError, get_method
    from .tasks import get_task

    if not get_task(task).generative:
        # a classifier may pool in its own way (mean pooling for sentence-transformers), which a plain
        # transformers checkpoint cannot record
        return "merged export is for generation tasks (SFT, seq2seq); a classifier's adapter loads with peft"
    try:
        method = get_method(method_name)
    except UnknownMethodError as exc:
        return str(exc)
    if not method.can_merge:
        return (
            f"{method.label} adapters cannot be folded into the model's weights (they add modules or prompt vectors "
            "of their own); download the adapter instead"
        )
    if activated(method_params or {}):
        return (
            "an aLoRA adapter is switched on only from the answer on; folded into the weights it would change "
            "how the prompt is read too. Download the adapter instead (peft loads it as it is)"
        )
    if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
        return f"this {method.label} adapter was saved by the studio's own code, which merged export cannot fold yet"
    return None


def merge(model_path: Path, adapter_dir: Path, out_dir: Path, *, base_name: str, job_name: str = "") -> Path:
    """Write the merged model to out_dir (created; must not exist). Returns it."""
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    recorded = adapter_method(adapter_dir) or {}
    method, params = recorded.get("method", "lora"), recorded.get("method_params")
    if refusal := merge_refusal(method, adapter_task(adapter_dir), adapter_dir, params):
        raise MergeError(refusal)
    predictor = load_predictor(Path(model_path), adapter_dir)
    model = predictor.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to("cpu").eval()
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    predictor.tokenizer.save_pretrained(out_dir)
    task = adapter_task(adapter_dir)
    template = recorded.get("template") or AUTO
    modelfile = _modelfile(predictor.tokenizer, template) if predictor.task.id == "sft" else None
    if modelfile:
        (out_dir / MODELFILE).write_text(modelfile, encoding="utf-8")
    (out_dir / CARD).write_text(
        _card(base_name, job_name, task, recorded, type(model).__name__, modelfile is not None), encoding="utf-8"
    )
    return out_dir


def _modelfile(tokenizer, template: str) -> str:
    """Ollama's recipe for the folder: the prompt laid out as in training, stopping at the end token."""
    prompt, _ = render(SftExample(0, prompt="{{ .Prompt }}", response=""), tokenizer, template)
    if tokenizer.bos_token and prompt.startswith(tokenizer.bos_token):
        prompt = prompt[len(tokenizer.bos_token) :]  # Ollama adds it itself
    stops = [t for t in (tokenizer.eos_token, "<end_of_turn>" if "<start_of_turn>" in prompt else None) if t]
    lines = ["FROM .", f'TEMPLATE """{prompt}"""', *(f'PARAMETER stop "{stop}"' for stop in stops)]
    return "\n".join(lines) + "\n"


def _card(base_name: str, job_name: str, task: str, recorded: dict, architecture: str, has_modelfile: bool) -> str:
    method = recorded.get("method", "lora")
    auto = {"sft": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM"}.get(
        task, "AutoModelForSequenceClassification"
    )
    lines = [
        f"# {job_name or 'Merged model'}",
        "",
        f"{base_name} with a {method} adapter trained in the fine-tuning studio ({task}), folded into the weights: "
        f"a plain `{architecture}` in safetensors that needs neither peft nor the base model.",
        "",
        "```python",
        "import torch",
        f"from transformers import AutoTokenizer, {auto}",
        "",
        'folder = "."  # this folder',
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        f"model = {auto}.from_pretrained(folder, dtype=torch.float32).eval()",
        "```",
        "",
        f"Method parameters: `{json.dumps(recorded.get('method_params') or {}, sort_keys=True)}`.",
    ]
    if has_modelfile:
        lines += [
            "",
            "With [Ollama](https://ollama.com): `ollama create my-model -f Modelfile` in this folder, then "
            "`ollama run my-model`. The Modelfile lays the prompt out as in training.",
        ]
    return "\n".join(lines) + "\n"
