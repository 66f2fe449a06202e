from pathlib import Path

from studio_cli.client import UPLOAD_TIMEOUT, Studio
from studio_cli.config import resolve
from studio_cli.errors import CliError
from studio_cli.progress import CountingReader, progress_bar


def upload(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    form = {
        key: value
        for key, value in (("name", args.name), ("text_column", args.text_column), ("label_column", args.label_column))
        if value
    }
    studio = Studio(*resolve(args))
    with (
        open(path, "rb") as file,
        progress_bar(
            args, total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name
        ) as bar,
    ):
        response = studio.request(
            "POST",
            "/datasets",
            ok=(201,),
            data=form,
            timeout=UPLOAD_TIMEOUT,
            files={"file": (path.name, CountingReader(file, bar), "application/octet-stream")},
        )
    dataset = response.json()
    print(f"dataset {dataset['id']} '{dataset['name']}': {dataset['rows']:,} rows, {dataset['format']}")
    print(f"columns: {', '.join(dataset['columns'])}")
    for warning in dataset.get("warnings") or []:
        print(f"warning: {warning.get('message', warning)}")
    return 0
