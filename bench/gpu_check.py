"""On a machine with an NVIDIA GPU: the bundled models trained by the studio with LoRA in fp32, in bf16 and as
QLoRA (4-bit NF4 base), each next to a plain transformers + peft loop with the same model, rows, batch, length
and precision on the same GPU; training tokens per second (studio over plain), peak GPU memory of each, and
whether each adapter reloads in plain peft and answers as the studio's own loader does.

    bench/gpu_check.sh                  # the whole check, then --docs (what a GPU session runs)
    .venv/bin/python bench/gpu_check.py [--rows 2000] [--sft-rows 200] [--json out.json] [--docs]
    .venv/bin/python bench/gpu_check.py --cpu-smoke   # the plumbing on a CPU: fp32 only, a few rows

Models: the bundled all-MiniLM-L6-v2 on SST-2 (text classification, batch 32, max length 64, 1 epoch) and the
bundled Gemma 3 270M on GSM8K (SFT, batch 8, max length 256, 1 epoch). The studio run is `python -m peftcore
train` (the training child the workers start) with --param precision=... / quantize=4bit; its figures come from
its report (tokens/s over the working seconds, peak memory from torch.cuda). The plain loop is in this file
(`plain_run`), timed the same way. --docs writes the table with the GPU's name between the "gpu" markers.
"""

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
MARKERS = ("<!-- gpu:start -->", "<!-- gpu:end -->")
MODEL_ROOT = Path.home() / ".cache" / "peft-studio-tests" / "models"  # where bench/sft.py converts Gemma too
SETTINGS = {"fp32": {}, "bf16": {"precision": "bf16"}, "qlora": {"precision": "bf16", "quantize": "4bit"}}


def gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def cases(rows: int, sft_rows: int) -> list[dict]:
    gsm8k = DATA / "gsm8k" / "train.jsonl"
    return [
        {
            "name": "MiniLM, SST-2",
            "task": "text-classification",
            "model": "bundled/all-MiniLM-L6-v2",
            "data": DATA / "sst2" / "train.tsv",
            "columns": ["--text-column", "sentence", "--label-column", "label"],
            "params": {"max_rows": rows, "epochs": 1, "batch_size": 32, "max_length": 64, "baseline_eval": "false"},
        },
        {
            "name": "Gemma 3 270M, GSM8K SFT",
            "task": "sft",
            "model": "bundled/gemma-3-270m",
            "data": gsm8k,
            "columns": ["--text-column", "question", "--label-column", "answer"],
            "params": {"max_rows": sft_rows, "epochs": 1, "batch_size": 8, "max_length": 256, "baseline_eval": "false"},
        },
    ]


def studio_run(case: dict, setting: str, out: Path) -> dict:
    params = {**case["params"], **SETTINGS[setting]}
    command = [sys.executable, "-m", "peftcore", "train", "--task", case["task"], "--model", case["model"]]
    command += ["--model-root", str(MODEL_ROOT)]
    command += ["--data", str(case["data"]), *case["columns"], "--method", "lora", "--out", str(out)]
    command += [part for key, value in params.items() for part in ("--param", f"{key}={value}")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finished = next((e for e in events if e.get("event") == "done"), None)
    if finished is None:
        error = next((e for e in events if e.get("event") == "error"), {"message": done.stderr[-800:]})
        return {"error": error.get("message")}
    report = finished["report"]
    return {
        "tokens_per_second": report["efficiency"]["tokens_per_second"],
        "peak_memory_bytes": report["efficiency"]["peak_memory_bytes"],
        "device": report["device"],
        "adapter_dir": finished["adapter_dir"],
    }


def plain_run(case: dict, setting: str, model_path: Path) -> dict:
    """A user's own loop: transformers + peft, LoRA r 8 on the attention and MLP projections, AdamW, the same
    rows, batch, length and precision; tokens per second over the training loop alone, peak GPU memory."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, str(REPO))
    from peftcore.data import read_records

    params, device = case["params"], "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    rows = [record for _, record in read_records(case["data"])][: params["max_rows"]]
    loading = {"dtype": torch.bfloat16 if setting != "fp32" else torch.float32}
    if setting == "qlora":
        from transformers import BitsAndBytesConfig

        loading["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    if case["task"] == "sft":
        model = AutoModelForCausalLM.from_pretrained(model_path, **loading)
        texts = [f"{r['question']}\n{r['answer']}" for r in rows]
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        config = LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, **loading)
        texts = [r["sentence"] for r in rows]
        labels = [int(r["label"]) for r in rows]
        targets = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
        config = LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="SEQ_CLS")
    if setting == "qlora":
        model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, config).to(device) if setting != "qlora" else get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch_size, tokens = params["batch_size"], 0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[i : i + batch_size],
            truncation=True,
            max_length=params["max_length"],
            padding=True,
            return_tensors="pt",
        ).to(device)
        if case["task"] == "sft":
            batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        else:
            batch["labels"] = torch.tensor(labels[i : i + batch_size], device=device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=setting != "fp32"):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return {"tokens_per_second": tokens / seconds, "peak_memory_bytes": peak}


def reloads(case: dict, adapter_dir: str, model_path: Path) -> bool:
    """The adapter in plain peft on a freshly loaded base answers as the studio's loader does."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, str(REPO))
    from peftcore.predict import load_predictor

    text = "a gripping and lovely film" if case["task"] != "sft" else "What is 12 + 30?"
    studio = load_predictor(model_path, Path(adapter_dir))
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    if case["task"] == "sft":
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    else:
        labels = json.loads((Path(adapter_dir) / "labels.json").read_text())["labels"]
        base = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(labels))
    plain = PeftModel.from_pretrained(base, adapter_dir).eval().to(next(studio.model.parameters()).device)
    batch = tokenizer([text], return_tensors="pt").to(next(plain.parameters()).device)
    pooling = json.loads((Path(adapter_dir) / "peftcore_method.json").read_text()).get("pooling")
    with torch.no_grad():
        ours = studio.model(**batch).logits.float()
        if case["task"] != "sft" and pooling == "mean":
            # trained on the masked mean of the token vectors (the model card says so): what a user writes
            inner = plain.base_model.model
            hidden = getattr(inner, inner.base_model_prefix)(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            theirs = inner.classifier((hidden * mask).sum(1) / mask.sum(1)).float()
        else:
            theirs = plain(**batch).logits.float()
    if case["task"] == "sft":
        return bool(torch.equal(ours[0, -1].argmax(), theirs[0, -1].argmax()))
    return bool(torch.allclose(ours, theirs, atol=1e-3))


def model_folder(reference: str) -> Path:
    sys.path.insert(0, str(REPO))
    from peftcore.models import resolve_model

    if "gemma" in reference:
        from peftcore import gemma_bundle

        gemma_bundle.prepare(MODEL_ROOT)  # converted once from the bundled GGUF
    return Path(resolve_model(reference, model_root=MODEL_ROOT))


def measure(rows: int, sft_rows: int, settings: list[str], only: set[str] | None) -> dict:
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for case in cases(rows, sft_rows):
            if only and case["task"] not in only:
                continue
            path = model_folder(case["model"])
            for setting in settings:
                studio = studio_run(case, setting, Path(tmp) / f"{case['task']}-{setting}")
                row = {"case": case["name"], "setting": setting, "studio": studio}
                if "error" not in studio:
                    row["plain"] = plain_run(case, setting, path)
                    row["reloads"] = reloads(case, studio["adapter_dir"], path)
                print(json.dumps(row), flush=True)
                results.append(row)
    return {"date": datetime.date.today().isoformat(), "gpu": gpu_name() or "CPU (smoke run)", "runs": results}


def table(result: dict) -> str:
    lines = [
        f"{result['gpu']}, {result['date']}, `bench/gpu_check.sh`:",
        "",
        "| model | precision | studio tokens/s | plain tokens/s | studio / plain | peak memory studio / plain | reloads in plain peft |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        studio, plain = run["studio"], run.get("plain") or {}
        if "error" in studio:
            lines.append(f"| {run['case']} | {run['setting']} | failed: {studio['error'][:120]} | | | | |")
            continue

        def gib(value):
            return f"{value / 1024**3:.2f} GiB" if value else "—"

        ratio = studio["tokens_per_second"] / plain["tokens_per_second"] if plain.get("tokens_per_second") else None
        lines.append(
            f"| {run['case']} | {run['setting']} | {studio['tokens_per_second']:,.0f} | "
            f"{plain.get('tokens_per_second', 0):,.0f} | {ratio:.2f} | "
            f"{gib(studio['peak_memory_bytes'])} / {gib(plain.get('peak_memory_bytes'))} | "
            f"{'yes' if run.get('reloads') else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--sft-rows", type=int, default=200)
    parser.add_argument("--cpu-smoke", action="store_true", help="fp32 only, a few rows, classification only")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    if args.cpu_smoke:
        result = measure(64, 8, ["fp32"], {"text-classification"})
    else:
        if gpu_name() is None:
            raise SystemExit("no NVIDIA GPU here (nvidia-smi found none); --cpu-smoke checks the plumbing on a CPU")
        result = measure(args.rows, args.sft_rows, list(SETTINGS), None)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    if args.docs and not args.cpu_smoke:
        write_between(MARKERS, table(result))


if __name__ == "__main__":
    main()
