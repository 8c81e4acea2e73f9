"""Records from the files people have: JSONL, a JSON array, Parquet, a local Hugging Face dataset directory.

    python train.py --data pairs.parquet --fields prompt=question,chosen=response_a,rejected=response_b
    python generate.py judge --model DIR --benchmark jsonl --data saved_dataset_dir --data-split test --out runs/e
    python -m pytest tests/data/test_formats.py -q

iter_records(path) yields (row, record) for every record of one source, row being what a DataError names:
- JSONL (one object a line; blank lines allowed) and JSON (an array of objects; a .json file that does not
  start with "[" is read as JSON Lines, as `Dataset.to_json` writes it): the 1-based line a record starts on.
- Parquet (.parquet): the 1-based row, read with pyarrow (the reader `datasets` itself uses) batch by batch.
- A directory written by `Dataset.save_to_disk` (dataset_info.json + state.json) or `DatasetDict.save_to_disk`
  (dataset_dict.json; the split is `split`, else "train", else the only split): the 1-based row, read with
  `datasets.load_from_disk`, which reads local Arrow files and never downloads anything.
A name that is not a local file or directory (a hub name such as "org/dataset") is refused with one line:
nothing is ever fetched from a hub.

Pair files go through normalize_pair_record: the field map of --fields (parse_field_map, checked when the
flags are parsed) renames columns, an integer id becomes its string, and a missing source becomes the file's
stem. load_pairs / read_pairs (j1core/data/pairs.py) call both.
"""
from __future__ import annotations

from pathlib import Path

from j1core.data.pairs import DataError, _records
from j1core.errors import UserError

PAIR_FIELDS = ("id", "prompt", "chosen", "rejected", "source", "category")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def parse_field_map(spec: str | None) -> dict[str, str]:
    """'prompt=question,chosen=response_a' -> {"prompt": "question", "chosen": "response_a"} (pair field ->
    column). Raises ValueError naming --fields on a malformed spec, an unknown pair field or a repeat."""
    if spec is None or not str(spec).strip():
        return {}
    mapping = {}
    for item in str(spec).split(","):
        target, sep, column = (part.strip() for part in item.partition("="))
        if not sep or not target or not column:
            raise UserError(f"--fields: {item.strip()!r} is not FIELD=COLUMN (example: "
                             "--fields prompt=question,chosen=response_a,rejected=response_b)")
        if target not in PAIR_FIELDS:
            raise UserError(f"--fields: {target!r} is not a pair field; fields: {', '.join(PAIR_FIELDS)}")
        if target in mapping:
            raise UserError(f"--fields: {target!r} is mapped twice")
        mapping[target] = column
    return mapping


def normalize_pair_record(record, path, row: int, fields: dict[str, str] | None = None):
    """A pair record after the field map, with an integer id as text and a missing source as the file stem.
    Anything that is not a JSON object is returned as it is, for pair_from_record to refuse."""
    if not isinstance(record, dict):
        return record
    if fields:
        record = dict(record)
        for target, column in fields.items():
            if column not in record:
                raise DataError(path, row, column, "missing_field", f"missing (--fields {target}={column})")
            record[target] = record[column]
    record_id = record.get("id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record = {**record, "id": str(record_id)}
    if "source" not in record or record["source"] is None:
        record = {**record, "source": source_stem(path)}
    return record


def source_stem(path) -> str:
    """The default Pair.source of a file: its name without the suffix (a dataset directory: its name)."""
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def check_local(path) -> Path:
    """The path, or a one-line refusal when it names nothing on this machine (no hub access, ever)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such local file or directory (j1 reads local files only and never "
                                "downloads a dataset from a hub; save it with Dataset.save_to_disk, or as JSONL or "
                                "Parquet, and pass that path)")
    return path


def is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or
                              ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()))


def iter_records(path, split: str | None = None):
    """(row, record or DataError) for every record of a JSONL/JSON/Parquet file or a saved HF dataset."""
    path = check_local(path)
    if path.is_dir():
        if not is_hf_dataset_dir(path):
            raise UserError(f"{path}: a directory must be a saved Hugging Face dataset (Dataset.save_to_disk: "
                             "dataset_info.json and state.json, or dataset_dict.json)")
        yield from _dataset_dir_records(path, split)
    elif path.suffix == ".parquet":
        yield from _parquet_records(path)
    else:
        yield from _records(path, path.read_bytes())


def _optional(module: str, path: Path):
    """Import what Parquet and saved datasets need (the `data` extra), or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{path}: reading it needs the {module.split('.')[0]} package: "
                        "pip install -e '.[data]'") from None


def _parquet_records(path: Path):
    pq = _optional("pyarrow.parquet", path)

    try:
        table = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises its own error types for a file that is not Parquet
        raise DataError(path, 0, "(file)", "invalid_json", f"not a Parquet file ({error})") from None
    row = 0
    for batch in table.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _dataset_dir_records(path: Path, split: str | None):
    datasets = _optional("datasets", path)

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        names = list(data)
        if split is None:
            split = "train" if "train" in data else (names[0] if len(names) == 1 else None)
            if split is None:
                raise UserError(f"{path}: a DatasetDict with splits {', '.join(names)} and no 'train': choose one "
                                 "with --data-split")
        if split not in data:
            raise UserError(f"{path}: --data-split {split!r} is not a split; splits: {', '.join(names)}")
        data = data[split]
    elif split is not None:
        raise UserError(f"{path}: --data-split {split!r} given, but this is a single Dataset without splits")
    for row, record in enumerate(data, start=1):
        yield row, record


def data_files(folder) -> list[Path]:
    """The data sources under a folder, in name order: JSONL/JSON/Parquet files and saved HF dataset
    directories (whose own files are not listed again); a file or a dataset directory stands alone."""
    folder = check_local(folder)
    if folder.is_file() or is_hf_dataset_dir(folder):
        return [folder]
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found += data_files(child)
        elif child.suffix in DATA_SUFFIXES and child.name not in ("dataset_info.json", "state.json",
                                                                   "dataset_dict.json"):
            found.append(child)
    return found
