"""The capacity files and their JSON Lines record (bertbench/store/capacity_file.py)."""

import json

import pandas as pd

from bertbench.store.capacity_file import COLUMNS, capacity_path, read_capacity, read_rows, save


def capacity_row(seqlen: int, largest: int, **kw) -> dict:
    return {"timestamp": "2026-12-03T10:00:00+00:00", "run_id": "r1", "task": "qa", "model": "bert-tiny",
            "attn_implementation": "sdpa", "baseline": "False", "device": "cpu", "dtype": "fp32", "mode": "inference",
            "packed": False, "max_seqlen": seqlen, "largest_batch": largest, "smallest_failure": largest + 1,
            "probes": "1+ 2+ 4-", "status": "ok", "detail": "", **kw}  # fmt: skip


def test_every_save_writes_the_record_beside_the_csv_and_a_record_alone_keeps_its_rows(tmp_path):
    path = capacity_path(tmp_path, "qa")
    save(path, [capacity_row(32, 12)])
    save(path, [capacity_row(64, 6, packed=True, detail="a, b")])
    record = path.with_suffix(".jsonl")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [list(line) for line in lines] == [list(COLUMNS)] * 2
    assert (lines[1]["max_seqlen"], lines[1]["largest_batch"], lines[1]["packed"], lines[1]["flash_attn"]) == (
        64, 6, True, None,
    )  # fmt: skip
    table = pd.read_csv(path)
    assert pd.read_json(record, lines=True)[["max_seqlen", "largest_batch"]].equals(
        table[["max_seqlen", "largest_batch"]]
    )
    rows = read_capacity(path)
    path.unlink()  # the records alone, as a dataset hub holds them
    assert read_capacity(path) == rows and read_rows(tmp_path) == rows
    save(path, [capacity_row(128, 3)])
    assert read_capacity(path)[:2] == rows and len(read_capacity(path)) == 3
    assert len(record.read_text().splitlines()) == 3
