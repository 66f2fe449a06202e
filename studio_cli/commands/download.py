import hashlib
import os
import re
from pathlib import Path

import httpx

from studio_cli.client import Studio
from studio_cli.config import resolve
from studio_cli.errors import CliError
from studio_cli.progress import progress_bar


def _filename(response: httpx.Response, job_id: int) -> str:
    match = re.search(r'filename="([^"/\\]+)"', response.headers.get("Content-Disposition", ""))
    return match.group(1) if match else f"job-{job_id}-adapter.zip"


def download(args) -> int:
    studio = Studio(*resolve(args))
    response = studio.stream("GET", f"/jobs/{args.job}/adapter")
    try:
        target = Path(args.output) if args.output else Path(_filename(response, args.job))
        if target.is_dir():
            target = target / _filename(response, args.job)
        partial = target.with_name(target.name + ".part")  # the target appears only once complete and checked
        digest, size = hashlib.sha256(), 0
        total = int(response.headers.get("Content-Length") or 0) or None
        try:
            with (
                open(partial, "wb") as out,
                progress_bar(args, total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name) as bar,
            ):
                for chunk in response.iter_raw():  # chunk by chunk: the zip is never held in memory
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise CliError(
                f"the download from {studio.url} broke off after {size:,} bytes ({exc}); try again"
            ) from None
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        response.close()
    expected = response.headers.get("X-Content-SHA256")
    if (total is not None and size != total) or (expected and digest.hexdigest() != expected):
        partial.unlink(missing_ok=True)
        raise CliError(
            f"the download of job {args.job}'s adapter arrived damaged ({size:,} of {total or '?'} "
            "bytes, or a checksum that does not match); try again"
        )
    os.replace(partial, target)
    print(f"{target} ({size:,} bytes, sha256 {digest.hexdigest()})")
    return 0
