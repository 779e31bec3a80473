"""Atomic file writes: a crash mid-write leaves the last good copy, never a torn file."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def _atomic_write(path: str, data: bytes) -> None:
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str, text: str) -> None:
    _atomic_write(path, text.encode("utf-8"))


def atomic_write_bytes(path: str, data: bytes) -> None:
    _atomic_write(path, data)


def _default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def to_jsonable(obj: Any) -> Any:
    """Round-trip through json with numpy scalars/arrays converted; NaN/Inf kept as JSON's NaN."""
    return json.loads(json.dumps(obj, default=_default))


def atomic_write_json(path: str, obj: Any, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=_default, sort_keys=False) + "\n")


def append_jsonl(path: str, records) -> None:
    """Append records as JSON lines; each line is written whole and flushed (a crash loses at most
    the line being written, and readers skip a torn last line)."""
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, default=_default) + "\n")
        f.flush()


def atomic_write_jsonl(path: str, records) -> None:
    """Replace a JSON-lines file with `records`, atomically (readers see the old or the new file)."""
    atomic_write_text(path, "".join(json.dumps(r, default=_default) + "\n" for r in records))


def read_jsonl(path: str) -> list:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # a torn last line after a crash
                continue
    return out


def figure_png(fig, dpi: int = 100, *, tight: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure (no timestamp in the file, so the same figure gives the
    same bytes). The one way the toolkit renders a plot; write it with `atomic_write_bytes`."""
    import io as _io

    if tight:
        fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
