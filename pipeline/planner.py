"""The plan of a run, built without holding the archive in one process: listing and ledger are
hash-partitioned by key family and joined one partition at a time.

Map tasks each stream one part of the inputs into one scratch Parquet file whose row groups each
hold one partition's rows (a task writes its rows out every `FLUSH_ROWS`, so none holds more):
- the listing: one task lists the top level of `images` (and of `masks`) and names its
  folders, then one task per group of folders lists them, page by page; or one task per file of
  a manifest;
- the ledger: one task per group of stats files (the columns the plan needs), started once
  the listing has told the layout.
Rows of pairs go to partition `crc32(key_family(stem)) % PARTITIONS` (`formats.pairs.key_family`:
every key a file can be given reduces to its family, so keys never collide across partitions). For
shard inputs the ledger's rows go by their shard's URL instead, and each reduce task writes the
done items of its shards, sorted by shard, to a done file: the read task of a shard loads its
own rows from it (`ledger.shard_done`), so no process holds every done key of the archive.

Reduce tasks each take a contiguous range of partitions, read those row groups from every map
file, and do for them alone what a listing of the whole archive would: pair images with masks,
give each file its stable key, drop the items the ledger holds done (a partitioned anti-join),
count what the run will do, and write the units to run to a Parquet file. The driver holds only
file names and counts: its memory does not grow with the archive.

Scratch files live in `OUT/_plan/<run id>/` for a run (visible to every node; removed when the
run ends, and any left by a run that died are removed by the next one, which holds the lease),
and in a local temporary folder for a dry run, which writes nothing to OUT. Tasks are Ray tasks
when Ray is up, and calls in this process one after another otherwise.
"""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import ledger
from .config import RestoreConfig
from .cost import expected_pixels
from .formats.common import IMAGE_EXTS, Found
from .formats.pairs import key_family, pair_units
from .stages.sources import UNIT_SCHEMA, excluded, iter_files, place_entries, version
from .storage import filesystem, is_local, strip_ext

PARTITIONS = 256  # reduce tasks take contiguous ranges of them
ROWS_PER_REDUCE = 200_000  # listed + ledger rows per reduce task (a few 100 MB of objects)
MAX_MAP_TASKS = 64  # folder groups per listed root
FILES_PER_LEDGER_TASK = 8
FLUSH_ROWS = 262_144  # rows a map task holds before writing them out as row groups
LISTED = pa.schema(
    [
        ("part", pa.int32()),
        ("side", pa.string()),  # image | mask
        ("path", pa.string()),
        ("version", pa.string()),
        ("size", pa.int64()),
    ]
)
HISTORY_COLUMNS = [c for c in ledger.LEDGER_COLUMNS if c != "run_id"]


def partition_of(stem: str) -> int:
    return zlib.crc32(key_family(stem).encode()) % PARTITIONS


def shard_partition(image_uri: str) -> int:
    """The partition of a shard's ledger rows: by the shard's URL (`shard.tar#key.jpg`)."""
    return zlib.crc32(image_uri.split("#", 1)[0].encode()) % PARTITIONS


# -- where the map and reduce files go, and where the tasks run --------------------------------


@dataclass(frozen=True)
class Scratch:
    """A folder for the plan's files: `url` with the job's storage options."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def for_run(config: RestoreConfig, run_id: str) -> Scratch:
        """OUT/_plan/<run_id>; plans left there by runs that died are removed first."""
        fs, root = filesystem(config.output, config.io_options, config.io_retries)
        if fs.exists(f"{root}/_plan"):
            fs.rm(f"{root}/_plan", recursive=True)
        fs.makedirs(f"{root}/_plan/{run_id}", exist_ok=True)
        return Scratch(f"{config.output.rstrip('/')}/_plan/{run_id}", config.io_options)

    @staticmethod
    def local() -> Scratch:
        return Scratch(tempfile.mkdtemp(prefix="spl-plan-"))

    def path(self, name: str) -> tuple[Any, str]:
        fs, root = filesystem(self.url, self.options)
        return fs, f"{root}/{name}"

    def remove(self) -> None:
        """Remove the plan's files (and an empty local `_plan` folder)."""
        fs, root = filesystem(self.url, self.options)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        parent = posixpath.dirname(root)
        if is_local(fs) and posixpath.basename(parent) == "_plan":
            with contextlib.suppress(OSError):
                os.rmdir(parent)  # only when empty


class Tasks:
    """Runs plan steps as Ray tasks when Ray is up (one CPU each), else in this process."""

    def __init__(self) -> None:
        try:
            import ray

            self.ray = ray if ray.is_initialized() else None
        except ImportError:
            self.ray = None
        self._remote: dict[Callable, Any] = {}

    def start(self, fn: Callable, calls: list[tuple]) -> list[Any]:
        """Start one call of `fn` per argument tuple; `wait` gives their results."""
        if self.ray is None:
            return [fn(*args) for args in calls]
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=3)(fn)
        return [self._remote[fn].remote(*args) for args in calls]

    def wait(self, started: list[Any]) -> list[Any]:
        return self.ray.get(started) if self.ray is not None else started

    def map(self, fn: Callable, calls: list[tuple]) -> list[Any]:
        return self.wait(self.start(fn, calls))


# -- map tasks ------------------------------------------------------------------------------


@dataclass
class Mapped:
    """A map task's file: the row groups of each partition, rows, extensions seen."""

    file: str
    groups: dict[int, list[int]]
    rows: int = 0
    exts: Counter = field(default_factory=Counter)  # of the listed images (for the layout)
    sides: Counter = field(default_factory=Counter)  # rows per side (image, mask)
    folders: list[str] = field(default_factory=list)  # found by a top-level listing


class _Writer:
    """Rows of one map task, bucketed by partition: every `FLUSH_ROWS` rows, each partition's
    bucket becomes a row group of the task's file, so a task holds at most that many rows."""

    def __init__(self, scratch: Scratch, name: str, schema: pa.Schema) -> None:
        self.scratch, self.name, self.schema = scratch, name, schema
        self.buckets: dict[int, list[pa.Table]] = {}
        self.held = 0  # rows in `buckets`
        self.pending: dict[str, list] = {n: [] for n in schema.names}
        self.rows = 0
        self.exts: Counter = Counter()
        self.sides: Counter = Counter()
        self.groups: dict[int, list[int]] = {}
        fs, path = scratch.path(name)
        self.handle = fs.open(path, "wb")
        self.writer = pq.ParquetWriter(self.handle, schema)
        self.written = 0  # row groups

    def add(self, row: dict[str, Any]) -> None:
        for name, values in self.pending.items():
            values.append(row.get(name))
        if len(self.pending["part"]) >= 65_536:
            self._spill()

    def add_file(self, side: str, path: str, rel: str, ver: str, size: int | None) -> None:
        """A listed file (`rel`: its path relative to the root of its side)."""
        stem, ext = strip_ext(rel)
        if side == "image":
            self.exts[ext] += 1
        elif ext not in IMAGE_EXTS:
            return
        self.sides[side] += 1
        row = {"part": partition_of(stem), "side": side, "path": path, "version": ver}
        self.add(row | {"size": size})

    def add_table(self, table: pa.Table) -> None:
        """Rows with a `part` column, sorted into their partitions' buckets."""
        self.rows += table.num_rows
        self.held += table.num_rows
        table = table.sort_by("part")
        parts = table["part"].to_numpy()
        starts = [0, *(i for i in range(1, len(parts)) if parts[i] != parts[i - 1])]
        for start, end in zip(starts, [*starts[1:], len(parts)], strict=True):
            self.buckets.setdefault(int(parts[start]), []).append(table.slice(start, end - start))
        if self.held >= FLUSH_ROWS:
            self._flush()

    def _spill(self) -> None:
        if self.pending["part"]:
            table = pa.table(self.pending, schema=self.schema)
            self.pending = {n: [] for n in self.schema.names}
            self.add_table(table)

    def _flush(self) -> None:
        for part in sorted(self.buckets):
            bucket = pa.concat_tables(self.buckets[part])
            self.writer.write_table(bucket, row_group_size=max(1, bucket.num_rows))
            self.groups.setdefault(part, []).append(self.written)
            self.written += 1
        self.buckets, self.held = {}, 0

    def close(self) -> Mapped:
        self._spill()
        self._flush()
        self.writer.close()
        self.handle.close()
        return Mapped(self.name, self.groups, self.rows, self.exts, self.sides)


def map_listing(spec: dict[str, Any], scratch: Scratch, name: str) -> Mapped:
    """List one part of a root (`folders`, or the top level of `root`) into a map file."""
    fs, _ = filesystem(spec["url"], spec["options"], spec["retries"])
    root = spec["root"]
    writer = _Writer(scratch, name, LISTED)
    found: list[str] = []
    if spec.get("single"):  # `images` names one file
        info = fs.info(root)
        files: Iterator = iter([(root, version(info), info.get("size"))])
    else:
        top = "folders" not in spec
        files = (
            entry
            for folder in spec.get("folders") or [root]
            for entry in iter_files(fs, folder, root, spec["exclude"], not top, found)
        )
    for path, ver, size in files:
        writer.add_file(spec["side"], path, posixpath.relpath(path, spec["base"]), ver, size)
    mapped = writer.close()
    mapped.folders = found
    return mapped


def map_manifest(spec: dict[str, Any], scratch: Scratch, name: str) -> Mapped:
    """The entries of one manifest file under `images` (and `masks`) into a map file."""
    from .stages.manifest import entries_of

    writer = _Writer(scratch, name, LISTED)
    roots = [spec["root"], *([spec["mask_root"]] if spec["mask_root"] else [])]
    entries = entries_of(spec["file"], spec["options"], spec["retries"])
    for index, path, rel, found in place_entries(entries, roots, spec["exclude"]):
        writer.add_file(("image", "mask")[index], path, rel, found.version, found.size)
    return writer.close()


def map_ledger(
    files: list[str], output: str, options: dict, by: str, scratch: Scratch, name: str
) -> Mapped:
    """The ledger rows of some stats files into a map file, partitioned `by` the family of
    their key (pairs) or by their shard's URL (`shard`)."""
    schema = ledger.empty_history(HISTORY_COLUMNS).schema.append(pa.field("part", pa.int32()))
    writer = _Writer(scratch, name, schema)
    for batch in ledger.iter_history(files, output, options, HISTORY_COLUMNS):
        if by == "shard":
            parts = [shard_partition(uri or "") for uri in batch["image_uri"].to_pylist()]
        else:
            parts = [partition_of(key) for key in batch["key"].to_pylist()]
        writer.add_table(
            pa.Table.from_batches([batch]).append_column("part", pa.array(parts, pa.int32()))
        )
    return writer.close()


# -- reduce tasks ---------------------------------------------------------------------------


@dataclass
class Reduced:
    """What a reduce task decided for its partitions."""

    file: str | None  # the units to run (UNIT_SCHEMA), None when there are none
    to_run: int
    listed: int
    pixels_to_run: int  # expected (pipeline/cost.py), from the listed bytes
    orphan_masks: int
    counts: Counter
    matched: int = 0  # images that found their mask
    examples: tuple[list[str], list[str]] = ([], [])  # a few images without a mask, and masks
    # without an image, for the message of a run in which no name matches


def _read(scratch: Scratch, mapped: list[Mapped], parts: range) -> pa.Table | None:
    tables = []
    for item in mapped:
        groups = [g for p in parts for g in item.groups.get(p, ())]
        if groups:
            fs, path = scratch.path(item.file)
            with fs.open(path, "rb") as handle:
                tables.append(pq.ParquetFile(handle).read_row_groups(groups))
    return pa.concat_tables(tables) if tables else None


def reduce_pairs(
    job: dict[str, Any],
    scratch: Scratch,
    listing: list[Mapped],
    history: list[Mapped],
    parts: range,
    index: int,
) -> Reduced:
    """Pairs, keys and the ledger's verdict for the partitions `parts` (see the module doc)."""
    config: RestoreConfig = job["config"]
    listed = _read(scratch, listing, parts)
    rows = listed.to_pylist() if listed is not None else []
    images = {r["path"]: Found(r["version"], r["size"]) for r in rows if r["side"] == "image"}
    masks = {r["path"]: Found(r["version"], r["size"]) for r in rows if r["side"] == "mask"}
    del rows, listed
    past = _read(scratch, history, parts)
    past = past if past is not None else ledger.empty_history(HISTORY_COLUMNS)
    fs = filesystem(config.images, config.io_options)[0]
    mfs = mroot = None
    if job["masks_listed"]:
        mfs, mroot = filesystem(config.masks, config.io_options)
    units, orphans = pair_units(
        config, fs, dict(sorted(images.items())), job["base"], mfs, mroot, masks,
        ledger.known_keys(past),
    )  # fmt: skip
    done_at = ledger.done_versions(past, job["settings_id"], config.retry_failed, config.overwrite)
    todo = [u for u in units if not ledger.is_done(done_at, u["key"], u["version"])]
    counts: Counter = Counter()
    if config.overwrite:
        counts["overwrite"] = len(todo)
    else:
        counts.update(ledger.pair_counts(past, job["settings_id"], units, todo, done_at))
    if job["shard_size"]:
        _number_shards(todo, f"{job['run_id']}-{index:03d}" if index >= 0 else job["run_id"],
                       job["shard_size"])  # fmt: skip
    name = None
    if todo:
        name = f"units-{max(index, 0):05d}.parquet"
        fs, path = scratch.path(name)
        with fs.open(path, "wb") as handle:
            pq.write_table(pa.Table.from_pylist(todo, schema=UNIT_SCHEMA), handle)
    unmatched = [u["key"] for u in units if mfs is not None and not u.get("mask")]
    pixels = sum(expected_pixels(u["image"], u.get("size")) for u in todo)
    return Reduced(
        name, len(todo), len(units), pixels, len(orphans), counts,
        matched=len(units) - len(unmatched), examples=(unmatched[:3], orphans[:3]),
    )  # fmt: skip


def _number_shards(units: list[dict[str, Any]], prefix: str, size: int) -> None:
    """Output shards of `size` items for loose-file inputs, named after the run."""
    for i, unit in enumerate(units):
        n, seq = divmod(i, size)
        unit.update(shard=f"{prefix}-{n:06d}", seq=seq)
        if seq == size - 1 or i == len(units) - 1:
            unit["shard_items"] = seq + 1


def reduce_shard_done(
    job: dict[str, Any], scratch: Scratch, history: list[Mapped], parts: range, index: int
) -> str | None:
    """The done item rows (shard URL, key, input version) of the shards in `parts`, sorted by
    shard URL into one Parquet file: a shard's read task loads only its own rows."""
    config: RestoreConfig = job["config"]
    past = _read(scratch, history, parts)
    if past is None:
        return None
    done_at = ledger.done_versions(past, job["settings_id"], config.retry_failed, config.overwrite)
    if not done_at:
        return None
    keys = list(done_at)
    shard_of = dict(zip(past["key"].to_pylist(), past["image_uri"].to_pylist(), strict=True))
    table = pa.table(
        {
            "shard": [(shard_of[k] or "").split("#", 1)[0] for k in keys],
            "key": keys,
            "input_version": [done_at[k] for k in keys],
        }
    ).sort_by("shard")
    name = f"done-{index:05d}.parquet"
    fs, path = scratch.path(name)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle, row_group_size=16_384)
    return name


# -- the driver's side -------------------------------------------------------------------------


@dataclass
class PlanInputs:
    """What the listing's map tasks found: their files, the extensions listed (the layout)."""

    listing: list[Mapped]
    exts: Counter
    base: str
    masks_listed: bool

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.listing)


def map_inputs(
    config: RestoreConfig, scratch: Scratch, tasks: Tasks, template: str | None
) -> PlanInputs:
    """Run the map tasks over the listing (or the manifest's files); `map_history` maps the
    ledger once the layout is known."""
    fs, root = filesystem(config.images, config.io_options, config.io_retries)
    masks_listed = bool(config.masks) and not template
    mroot = filesystem(config.masks, config.io_options)[1] if masks_listed else None
    common = {"options": config.io_options, "retries": config.io_retries}
    single = not config.manifest and fs.isfile(root)
    base = posixpath.dirname(root) if single else root
    roots = []  # (name, url, root, stem base, side, exclude)
    if config.manifest:
        from .stages.manifest import manifest_files

        files = manifest_files(config.manifest, config.io_options, config.io_retries)
        spec = {**common, "root": root, "mask_root": mroot, "exclude": excluded(config)}
        listing = tasks.wait(tasks.start(
            map_manifest,
            [({**spec, "file": f}, scratch, f"m-{i:05d}.parquet") for i, f in enumerate(files)],
        ))  # fmt: skip
        if masks_listed and not any(m.sides["mask"] for m in listing):
            roots.append(("l1", config.masks, mroot, mroot, "mask", []))  # masks listed as usual
    else:
        listing = []
        roots.append(("l0", config.images, root, base, "image", excluded(config)))
        if masks_listed:
            roots.append(("l1", config.masks, mroot, mroot, "mask", []))
    specs = [
        {**common, "name": name, "url": url, "root": path, "base": stem_base, "side": side,
         "exclude": skip, "single": single and side == "image"}
        for name, url, path, stem_base, side, skip in roots
    ]  # fmt: skip
    tops = tasks.wait(
        tasks.start(map_listing, [(spec, scratch, f"{spec['name']}-top.parquet") for spec in specs])
    )
    below = tasks.start(
        map_listing,
        [({**spec, "folders": chunk}, scratch, f"{spec['name']}-{i:05d}.parquet")
         for spec, top in zip(specs, tops, strict=True)
         for i, chunk in enumerate(_chunks(top.folders, MAX_MAP_TASKS))],
    )  # fmt: skip
    for top in tops:
        top.folders = []  # listed now; the reduce tasks need only the files
    listing += tops + tasks.wait(below)
    exts: Counter = Counter()
    for mapped in listing:
        exts.update(mapped.exts)
    return PlanInputs(listing, exts, base, masks_listed)


def map_history(config: RestoreConfig, scratch: Scratch, tasks: Tasks, by: str) -> list[Mapped]:
    """The ledger of OUT into map files, partitioned `by` key family (pairs) or shard."""
    stats = ledger.stats_files(config.output, config.io_options, config.io_retries)
    groups = _chunks(stats, math.ceil(len(stats) / FILES_PER_LEDGER_TASK))
    return tasks.map(
        map_ledger,
        [(g, config.output, config.io_options, by, scratch, f"ledger-{i:05d}.parquet")
         for i, g in enumerate(groups)],
    )  # fmt: skip


def shard_done_files(
    config: RestoreConfig, history: list[Mapped], scratch: Scratch, tasks: Tasks, settings_id: str
) -> Callable[[str], str | None]:
    """Reduce the shard-partitioned ledger into done files; returns shard URL -> the URL of
    the done file that holds its rows (None when no item of it is done)."""
    rows = sum(m.rows for m in history)
    ranges = _ranges(rows)
    job = {"config": config, "settings_id": settings_id}
    names = tasks.map(
        reduce_shard_done, [(job, scratch, history, parts, i) for i, parts in enumerate(ranges)]
    )
    step = ranges[0].stop

    def done_file(shard_url: str) -> str | None:
        name = names[shard_partition(shard_url) // step]
        return f"{scratch.url}/{name}" if name else None

    return done_file


def _ranges(rows: int) -> list[range]:
    """Contiguous ranges of the partitions, one per reduce task of about ROWS_PER_REDUCE rows."""
    count = min(PARTITIONS, max(1, math.ceil(rows / ROWS_PER_REDUCE)))
    step = math.ceil(PARTITIONS / count)
    return [range(s, min(PARTITIONS, s + step)) for s in range(0, PARTITIONS, step)]


def reduce_inputs(
    config: RestoreConfig,
    inputs: PlanInputs,
    history: list[Mapped],
    scratch: Scratch,
    tasks: Tasks,
    *,
    run_id: str,
    settings_id: str,
    shard_size: int | None,
) -> list[Reduced]:
    """One reduce task per range of partitions, sized by the rows listed and in the ledger."""
    ranges = _ranges(inputs.rows + sum(m.rows for m in history))
    job = {
        "config": config,
        "base": inputs.base,
        "masks_listed": inputs.masks_listed,
        "settings_id": settings_id,
        "run_id": run_id,
        "shard_size": shard_size,
    }
    return tasks.map(
        reduce_pairs,
        [(job, scratch, inputs.listing, history, parts, i if len(ranges) > 1 else -1)
         for i, parts in enumerate(ranges)],
    )  # fmt: skip


def listed_files(scratch: Scratch, inputs: PlanInputs) -> Iterator[tuple[str, Found]]:
    """(path, found) of every listed image-side file (for shard layouts: a few per shard)."""
    table = _read(scratch, [m for m in inputs.listing if m.file.startswith(("l0", "m-"))],
                  range(PARTITIONS))  # fmt: skip
    if table is None:
        return
    for row in table.filter(pc.equal(table["side"], "image")).to_pylist():
        yield row["path"], Found(row["version"], row["size"])


def _chunks(items: list[str], count: int) -> list[list[str]]:
    size = max(1, math.ceil(len(items) / max(1, count)))
    return [items[i : i + size] for i in range(0, len(items), size)]
