"""Atomic writes: a crash or Ctrl-C never leaves a half-written file behind.

A write goes to a hidden temporary ``.<name>.<pid>-<random>.tmp<suffix>`` next to the target and is renamed onto
it. A process killed mid-write (SIGKILL, power loss) leaves that temporary behind; :func:`remove_stale_temporaries`
removes the ones whose writer is gone, and the trainer and the benchmark call it when they start or resume.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``path``.

    Use for writers that want a file name (``torch.save``, ``safetensors.save_file``, ``fig.savefig``)::

        with atomic_path(out) as tmp:
            save_file(tensors, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def append_line_atomic(path: PathLike, line: str, header: str | None = None) -> None:
    """Append one line (e.g. a CSV row) so that the file always holds whole lines only.

    The file is rewritten to a temporary file and renamed, so an interruption leaves either the old
    or the new content. ``header`` is written first when the file does not exist yet.
    """
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else (header.rstrip("\n") + "\n" if header else "")
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + line.rstrip("\n") + "\n")


# ``.<name>.<tag>.tmp<suffix>``: tag is ``<pid>-<random>`` (this module), or mkstemp's random part alone (older
# versions); suffix is the target's own suffix
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+\.tmp(?P<suffix>\.[^.]*)?$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError, ValueError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def remove_stale_temporaries(folder: PathLike, min_age: float = 60.0) -> int:
    """Remove the temporaries of :func:`atomic_path` in ``folder`` that no running writer owns; returns how many.

    A temporary named with its writer's process id is stale when that process no longer exists (on this machine);
    one without (older versions) when it is older than ``min_age`` seconds. Other files are never touched."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    now = time.time()
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if m is None or not e.is_file(follow_symlinks=False):
            continue
        if (m.group("suffix") or "") != os.path.splitext(m.group("name"))[1]:
            continue
        if m.group("pid") is not None:
            stale = not _alive(int(m.group("pid")))
        else:
            stale = now - e.stat(follow_symlinks=False).st_mtime > min_age
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
                removed += 1
    return removed
