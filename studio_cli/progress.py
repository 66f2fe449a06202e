"""Progress bars and status lines on stderr (tqdm)."""

import sys

from tqdm import tqdm


def progress_bar(args, **kwargs) -> tqdm:
    # disable=None: off when stderr is not a terminal (logs, pipes, CI), unless --progress asks for it.
    return tqdm(file=sys.stderr, disable=False if args.progress else None, dynamic_ncols=True, **kwargs)


def say(message: str) -> None:
    """A status line on stderr that does not break a progress bar being drawn."""
    tqdm.write(message, file=sys.stderr)


class CountingReader:
    """A binary file whose reads move a byte progress bar; httpx streams it in 64 KiB reads."""

    def __init__(self, file, bar: tqdm):
        self.file, self.bar = file, bar

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.bar.update(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.file.seek(offset, whence)
        self.bar.n = position
        self.bar.refresh()
        return position

    def tell(self) -> int:
        return self.file.tell()

    def fileno(self) -> int:  # lets httpx send a Content-Length from the file's size, not read it into memory
        return self.file.fileno()
