"""Parquet files of image bytes and integer labels (the Hugging Face `imagenet-1k` files: an `image` column of
struct<bytes, path> and a `label` column), read by random access through pyarrow.

The index (file, row group and row within it, label and the image's file name per row) is built from the labels
and names columns once and cached. Parquet's smallest readable unit is a row group's column chunk, so reading
one image reads its row group's image column (Hugging Face writes image data sets in row groups of 100 rows):
each process keeps the last row group it read, which serves an ordered evaluation pass from one read per group,
while a shuffled training pass pays one group per image (benchmarks/data_sources.py measures what that costs;
rsb-shards converts to tar shards, read at one pread per image). Why not timm's hfds reader: it goes through the
`datasets` library's streaming or memory-mapped Arrow copy, and its iterable form loses per-sample seeding.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rsb.data.index_store import OpenFiles, PackedStrings, cached_arrays, file_stamps, index_classes
from rsb.errors import UserError

LABEL_COLUMNS = ("label", "cls", "labels", "target")


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("reading parquet files needs pyarrow: pip install pyarrow (or pip install rsb[parquet]).") \
            from None
    return pq


def image_columns(schema, path) -> tuple[str, str | None, str]:
    """(column path of the image bytes, column path of its file name or None, label column) in `schema`."""
    import pyarrow as pa
    image = name = label = None
    for field in schema:
        t = field.type
        if image is None and pa.types.is_struct(t) and t.get_field_index("bytes") >= 0:
            image = f"{field.name}.bytes"
            if t.get_field_index("path") >= 0:
                name = f"{field.name}.path"
        elif image is None and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            image = field.name
        elif label is None and field.name in LABEL_COLUMNS and pa.types.is_integer(t):
            label = field.name
    if image is None or label is None:
        raise UserError(f"parquet file {path} has no image bytes column (binary, or a struct with 'bytes') and "
                        f"integer label column ({', '.join(LABEL_COLUMNS)}); its columns are "
                        f"{', '.join(schema.names)}.")
    return image, name, label


class ParquetIndex:
    """The rows of a list of parquet files, in file order then row order."""

    def __init__(self, files: list[Path], root: Path, use_cache: bool = True):
        if not files:
            raise UserError(f"no .parquet files found in {root}.")
        pq = _pyarrow()
        self.root = Path(root)
        self.files = [str(f) for f in files]
        first = pq.ParquetFile(files[0])
        self._image_col, name_col, label_col = image_columns(first.schema_arrow, files[0])

        def build():
            file_ids, groups, rows, labels, names = [], [], [], [], []
            for k, f in enumerate(files):
                pf = pq.ParquetFile(f)
                cols = [label_col] + ([name_col] if name_col else [])
                table = pf.read(columns=cols, use_threads=False)
                labels.append(table.column(label_col.split(".")[0]).to_numpy())
                if name_col:  # the struct column, read down to its one selected field
                    names += table.column(name_col.split(".")[0]).combine_chunks().field(0).to_pylist()
                else:
                    names += [f"{Path(f).stem}-{r}" for r in range(table.num_rows)]
                for g in range(pf.metadata.num_row_groups):
                    n = pf.metadata.row_group(g).num_rows
                    file_ids.append(np.full(n, k, np.int32))
                    groups.append(np.full(n, g, np.int32))
                    rows.append(np.arange(n, dtype=np.int32))
            cat = np.concatenate
            return {"file_id": cat(file_ids), "group": cat(groups), "row": cat(rows),
                    "labels": cat(labels).astype(np.int64), **PackedStrings.pack(names).arrays("names")}

        a = cached_arrays("parquet", file_stamps(files), build, use_cache)
        self._file, self._group, self._row, self.labels = a["file_id"], a["group"], a["row"], a["labels"]
        self._names = PackedStrings.from_arrays(a, "names")
        self.classes = index_classes(self.labels, f"the parquet files in {root}", "rows")
        self.num_classes = len(self.classes)
        self._pf = OpenFiles(self.files, lambda p: pq.ParquetFile(p, memory_map=False), lambda f: f.close(), 64)
        self._last = (None, None)  # ((pid, file, row group), its image column): this process's last read

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self):
        return {**self.__dict__, "_last": (None, None)}

    def read(self, i: int) -> bytes:
        at = (os.getpid(), int(self._file[i]), int(self._group[i]))
        if self._last[0] != at:
            # use_threads=False: the loader's workers are the parallelism; pyarrow's pool would oversubscribe.
            table = self._pf.get(at[1]).read_row_group(at[2], columns=[self._image_col], use_threads=False)
            column = table.column(0).combine_chunks()
            if "." in self._image_col:
                column = column.field(0)
            self._last = (at, column)
        value = self._last[1][int(self._row[i])].as_py()
        if value is None:
            raise ValueError("the row's image is null")
        return value

    def where(self, i: int) -> str:
        return f"{self.files[self._file[i]]} row {self._row_in_file(i)} ({self._names[i]})"

    def _row_in_file(self, i: int) -> int:
        k = self._file[i]
        return int(i - np.searchsorted(self._file, k))

    def name(self, i: int) -> str:
        return os.path.basename(self._names[i])
