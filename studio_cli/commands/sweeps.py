"""Sweeps from a terminal: start one from a job's settings, print its table."""

from studio_cli.client import Studio
from studio_cli.config import resolve
from studio_cli.errors import CliError


def _values(name: str, raw) -> list[float]:
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    try:
        return [float(part) for part in parts if str(part).strip()]
    except ValueError:
        raise CliError(f"--vary {name}=: numbers separated by commas, such as {name}=4,8,16 (got {raw!r})") from None


def sweep(args) -> int:
    studio = Studio(*resolve(args))
    payload = {
        "base_job": args.job,
        "methods": [m.strip() for m in args.methods.split(",") if m.strip()],
        "grid": {name: _values(name, raw) for name, raw in args.vary},
    }
    payload.update({k: v for k, v in (("budget", args.budget), ("name", args.name)) if v is not None})
    body = studio.request("POST", "/sweeps", ok=(201,), json=payload).json()
    print(f"sweep {body['id']}: {len(body['jobs'])} jobs queued ({', '.join(str(row['job']) for row in body['jobs'])})")
    return 0


def show(args) -> int:
    studio = Studio(*resolve(args))
    body = studio.request("GET", f"/sweeps/{args.sweep}").json()
    print(f"sweep {body['id']}: {body['name']}")
    for row in body["jobs"]:
        values = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["values"].items())
        score = "—" if row["score"] is None else f"{row['score']:.4f}"
        mark = "  <- best" if row["best"] else ""
        print(
            f"  job {row['job']:>6}  {row['method']:<10} {values:<28} {row['status']:<10} {row['metric']} {score}{mark}"
        )
    return 0
