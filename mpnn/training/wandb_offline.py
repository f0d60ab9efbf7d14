"""Read what an offline W&B run recorded, without uploading it.

Offline runs keep summary, history and config only in `run-<id>.wandb`: a LevelDB-style log
(7-byte file header, 32 KiB blocks, chunks with a 7-byte header: CRC32, 2-byte little-endian
length, type 1 full / 2 first / 3 middle / 4 last) of protobuf `Record` messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(data: bytes) -> Iterator[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file (missing ':W&B' header)")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _HEADER:  # block tail padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:  # zero fill at the end of a block
            pos += left_in_block - _HEADER - length
        else:
            raise ValueError(f"corrupt W&B run file: chunk type {kind} at byte {pos}")


def _offline_records(run_dir: str | Path) -> Iterator:
    """The protobuf records of the (last) offline W&B run under `run_dir`."""
    from wandb.proto import wandb_internal_pb2

    files = sorted(Path(run_dir).glob("**/offline-run-*/run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no offline W&B run under {run_dir}")
    for payload in _records(files[-1].read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def offline_summary(run_dir: str | Path) -> dict:
    """The summary of the (last) offline W&B run under `run_dir`, as W&B would upload it."""
    summary: dict = {}
    for record in _offline_records(run_dir):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                summary[key] = json.loads(item.value_json)
    return summary


def offline_exit_code(run_dir: str | Path) -> int | None:
    """The exit code the (last) offline W&B run under `run_dir` was finished with (None: never finished)."""
    codes = [r.exit.exit_code for r in _offline_records(run_dir) if r.WhichOneof("record_type") == "exit"]
    return codes[-1] if codes else None


def run_ids(run_dir: Path) -> list[str]:
    """The W&B run ids of a run directory's W&B folders (`wandb/offline-run-<time>-<id>` or `run-<time>-<id>`),
    oldest first; one id for a run that was resumed into the same W&B run."""
    folders = sorted(Path(run_dir).glob("wandb/*run-*-*"), key=lambda path: path.name.split("-")[-2])
    return [folder.name.rsplit("-", 1)[1] for folder in folders if folder.is_dir()]
