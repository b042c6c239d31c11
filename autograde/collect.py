"""collect: take submissions from an LMS zip or a folder, attribute each file to a student and
a notebook, strip Colab's personal metadata, and place them where nbgrader expects them
(course_dir/submitted/<student>/week06/<notebook>.ipynb).

Naming rule (first match wins; <notebook> is a notebook name of solutions/week06 without
.ipynb, e.g. day2_qlora_finetuning):

1. folder per student:  <student_id>/<notebook>.ipynb          (at any depth in the zip/folder)
2. one flat file:        <student_id>__<notebook>.ipynb   or   <student_id>_<notebook>.ipynb
3. LMS exports that prefix the original file name, e.g. Moodle's
   "<Full Name>_<student_id>_assignsubmission_file_<notebook>.ipynb" or Canvas'
   "<name>_<student_id>_<submission_id>_<notebook>.ipynb": the student id is the first token
   made only of digits.

Colab download names are understood: "Copy of <notebook>.ipynb", "<notebook> (1).ipynb",
"<notebook>-2.ipynb".  Student ids keep letters, digits, '.', '-' and '@' ('_' is the
separator; an id never starts with '.').  A file named like a notebook but not valid JSON is
placed anyway: the grade step gives it the status "invalid notebook".

Hostile archives (autograde/README.md, "Hostile archives and files"): every entry of the zip
(or file of the folder) is judged alone, under a guard, and accounted for in
course_dir/collect_report.json ("entries": one record per entry, outcome placed |
unattributed | duplicate | rejected | skipped, with the reason).  Nothing is ever read whole
or without a bound: a file over --max-notebook-mb is never loaded, the archive's uncompressed
total is bounded by --max-archive-mb (from the zip's directory before anything is extracted,
and again while streaming), and a member is read in chunks.  Names with '..', absolute names,
names that collide after normalisation and names with control characters go to
unattributed/ under a generated name; symbolic links, devices and fifos are never extracted.
A file attributed to a student but unusable (too big, unreadable, a link) becomes the marker
submitted/<student>/week06/<notebook>.rejected.json = {"reason": ..., "source": <entry>}
instead of the notebook (see `rejected_marker`, `rejected_reason`).  Nothing is written
outside course_dir.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import ASSIGNMENT, MAX_ARCHIVE_MB, MAX_NOTEBOOK_MB
from .course import notebook_names

NB_METADATA_PERSONAL = ("colab", "accelerator", "gpuClass", "kaggle", "vscode", "widgets")
CELL_METADATA_PERSONAL = ("id", "colab", "outputId", "executionInfo", "colab_type", "pycharm",
                          "papermill", "execution")
ID_RE = re.compile(r"^(?!\.)[A-Za-z0-9.@-]+$")   # never "." or "..": an id is a folder name

MIB = 1 << 20            # every "MB" of the grader's limits and messages is a MiB (2**20 bytes)
CHUNK = 1 << 20          # a zip member or a file is read this many bytes at a time
MAX_ENTRIES = 100_000    # entries of one archive (files of one folder)
MAX_DIRECTORY_BYTES = MAX_ENTRIES * 256   # size of a zip's central directory (read into memory)
# The shape of a notebook's JSON, checked (linear time, no recursion) before it is parsed: a
# notebook is about 6 levels deep (its JSON outputs and widget state a few dozen); nbformat's
# recursive code fails past ~400 levels, json.loads past ~1000.  A parsed container costs ~100
# bytes and a value ~50, so the counts bound the memory a file within --max-notebook-mb takes.
MAX_JSON_DEPTH = 100
MAX_JSON_CONTAINERS = 500_000
MAX_JSON_VALUES = 5_000_000

OUTCOMES = ("placed", "unattributed", "duplicate", "rejected", "skipped")


# ---------------------------------------------------------------- sizes and JSON shape


def mb_text(nbytes: int) -> str:
    """A size for a message, in MB (MiB), rounded up: 1,610,612,736 bytes -> '1,536'."""
    v = nbytes / MIB
    return f"{math.ceil(v):,}" if v >= 10 else f"{math.ceil(v * 10) / 10:,g}"


def size_reason(nbytes: int, max_mb: float) -> str:
    """'1,536 MB > 100 MB limit'."""
    return f"{mb_text(nbytes)} MB > {max_mb:,g} MB limit"


def limit_bytes(max_mb: float | None) -> int | None:
    return None if max_mb is None else max(int(max_mb * MIB), 0)


_SHAPE_DROP = bytes(b for b in range(256) if b not in b'"[]{},:')
_SHAPE_PIECE = 1 << 18
_DEPTH_STEP = [0] * 256
for _c, _d in ((b"[", 1), (b"{", 1), (b"]", -1), (b"}", -1)):
    _DEPTH_STEP[_c[0]] = _d


def json_shape_problem(raw: bytes, max_depth: int = MAX_JSON_DEPTH,
                       max_containers: int = MAX_JSON_CONTAINERS,
                       max_values: int = MAX_JSON_VALUES) -> str | None:
    """Why the JSON text `raw` must not be parsed -- nested deeper than `max_depth`, or more
    containers or values than a notebook could need (what they would cost in memory) -- else
    None.  Linear time in C loops, no recursion, nothing parsed, memory a fraction of `raw`;
    text that is not JSON at all passes (json.loads then says why)."""
    # drop escaped backslashes, then escaped quotes, then all but quotes and structure: what
    # is left between two quotes is inside a string
    s = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _SHAPE_DROP)
    strings = s.count(b'"') // 2
    if strings > max_values:
        return f"JSON with more than {max_values:,} values (limit; {strings:,} strings)"
    containers = values = depth = deepest = 0
    pos, n = 0, len(s)
    while pos < n:                  # pieces that start and end outside a string
        end = min(pos + _SHAPE_PIECE, n)
        if s.count(b'"', pos, end) % 2:
            q = s.find(b'"', end)
            end = n if q < 0 else q + 1
        bare = b"".join(s[pos:end].split(b'"')[::2])
        pos = end
        containers += bare.count(b"[") + bare.count(b"{")
        values += bare.count(b",") + bare.count(b":")
        steps = list(itertools.accumulate(map(_DEPTH_STEP.__getitem__, bare.translate(None, b",:")),
                                          initial=depth))
        depth, deepest = steps[-1], max(deepest, max(steps))
        if containers > max_containers:
            return f"JSON with more than {max_containers:,} lists and objects (limit)"
        if containers + values > max_values:
            return f"JSON with more than {max_values:,} values (limit)"
        if deepest > max_depth:
            return f"JSON nested deeper than {max_depth} levels (a notebook needs fewer than 10)"
    return None


# ---------------------------------------------------------------- attribution, metadata


def _clean_name(stem: str) -> str:
    s = re.sub(r"(^|_)(Copy of |Bản sao của )", r"\1", stem.strip(), flags=re.I)
    s = re.sub(r"\s*\(\d+\)$", "", s)
    s = re.sub(r"-\d+$", "", s)
    return s.strip()


def attribute(rel: Path, notebooks: list[str]) -> tuple[str, str] | None:
    """(student_id, notebook) for a file path relative to the submission root, or None."""
    if rel.suffix != ".ipynb":
        return None
    stem = _clean_name(rel.stem)
    # 1. <student>/<notebook>.ipynb (also nbgrader's <student>/week06/<notebook>.ipynb)
    if stem in notebooks and len(rel.parts) >= 2:
        parents = [p for p in rel.parts[:-1] if p not in (ASSIGNMENT, "submitted")]
        if parents and ID_RE.match(parents[-1]):
            return parents[-1], stem
    # 2./3. a flat name ending with the notebook name
    for nb in sorted(notebooks, key=len, reverse=True):
        if stem.endswith(nb) and len(stem) > len(nb):
            prefix = stem[: -len(nb)].rstrip("_ ")
            if not prefix:
                continue
            if ID_RE.match(prefix):
                return prefix, nb
            tokens = [t for t in re.split(r"[_\s]+", prefix) if t]
            digits = [t for t in tokens if t.isdigit()]
            if digits:                       # Moodle / Canvas exports
                return digits[0], nb
    return None


def strip_personal(data: dict) -> dict:
    """Remove Colab's personal metadata (user names, photos, cell ids) from a notebook dict."""
    _strip(data)
    return data


def _strip(data: dict) -> int:
    """strip_personal; returns how many keys it removed."""
    removed = 0

    def drop(d: dict, keys) -> None:
        nonlocal removed
        for k in keys:
            if k in d:
                del d[k]
                removed += 1
    meta = data.get("metadata")
    if isinstance(meta, dict):
        drop(meta, NB_METADATA_PERSONAL)
    for cell in data.get("cells", []) if isinstance(data.get("cells"), list) else []:
        if not isinstance(cell, dict):
            continue
        cm = cell.get("metadata")
        if isinstance(cm, dict):
            drop(cm, CELL_METADATA_PERSONAL)
        for out in cell.get("outputs", []) if isinstance(cell.get("outputs"), list) else []:
            if isinstance(out, dict) and isinstance(out.get("metadata"), dict):
                drop(out["metadata"], ("colab", "executionInfo"))
    return removed


# ---------------------------------------------------------------- the rejected marker


def rejected_marker(ipynb_path: Path) -> Path:
    """submitted/<s>/week06/<nb>.ipynb -> submitted/<s>/week06/<nb>.rejected.json: written by
    collect INSTEAD of the notebook when the file attributed to (<s>, <nb>) cannot be used."""
    p = Path(ipynb_path)
    return p.with_name(p.stem + ".rejected.json")


def rejected_reason(ipynb_path: Path) -> str | None:
    """The reason recorded in the marker of `ipynb_path`, None where there is no marker.
    Never raises: an unreadable marker still means the file was rejected."""
    try:
        marker = rejected_marker(ipynb_path)
        if not marker.is_file():
            return None
    except Exception:
        return None
    try:
        with open(marker, "rb") as f:
            data = json.loads(f.read(1 << 16).decode("utf-8", "replace"))
        reason = data.get("reason") if isinstance(data, dict) else None
        return str(reason) if reason else "rejected by collect (no reason recorded)"
    except Exception:
        return "rejected by collect (its marker file is unreadable)"


# ---------------------------------------------------------------- entries


class _Unusable(Exception):
    """This file's content cannot be used (the message is the reason)."""


class _ArchiveFull(Exception):
    """The archive's uncompressed total passed --max-archive-mb while streaming."""


@dataclass
class _Entry:
    index: int
    name: str                       # as in the archive; for a folder, the path relative to it
    kind: str = "file"              # file | dir | symlink | special
    parts: tuple = ()               # normalised path (NFC, '/' separators); () when unsafe
    unsafe: str | None = None       # why the name cannot be used as a path
    skip: str | None = None         # the rule that ignores this entry
    size: int = 0                   # declared size (zip) or st_size (folder)
    src: Path | None = None         # its bytes: the staged copy (zip) or the file itself (folder)
    problem: str | None = None      # why its content cannot be used
    who: tuple | None = None
    record: dict = field(default_factory=dict)
    info: object = None             # its ZipInfo


_DRIVE = re.compile(r"^[A-Za-z]:")
_BAD_CHAR_CATEGORIES = ("Cc", "Cs")     # control characters, lone surrogates (undecodable bytes)


def _normalise(name: str) -> tuple[tuple[str, ...], str | None]:
    """(parts, None) for a name that is safe as a relative path, else ((), why)."""
    n = unicodedata.normalize("NFC", name).replace("\\", "/")
    if n.startswith("/") or _DRIVE.match(n):
        return (), "absolute path"
    parts = tuple(p for p in n.split("/") if p not in ("", "."))
    if ".." in parts:
        return (), "path with '..'"
    if not parts:
        return (), "empty name"
    for p in parts:
        if any(unicodedata.category(ch) in _BAD_CHAR_CATEGORIES for ch in p):
            return (), "name with control characters or bytes that are not UTF-8"
        if len(p.encode("utf-8")) > 255:
            return (), "name part longer than 255 bytes"
    return parts, None


def _skip_reason(parts: tuple) -> str | None:
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return "macOS resource fork, ignored"
    if parts[-1] == ".DS_Store":
        return "macOS Finder metadata, ignored"
    if ".ipynb_checkpoints" in parts:
        return "Jupyter checkpoint copy, ignored"
    if any(p.startswith(".") for p in parts):
        return "hidden file or folder, ignored"
    return None


_SPECIAL = {stat.S_IFIFO: "a fifo (named pipe)", stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _kind_of_mode(mode: int) -> tuple[str, str | None]:
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFDIR:
        return "dir", None
    if fmt == stat.S_IFLNK:
        return "symlink", "a symbolic link"
    if fmt in (0, stat.S_IFREG):
        return "file", None
    return "special", _SPECIAL.get(fmt, f"a special file (mode {mode:o})")


def _new_entry(index: int, name: str, kind: str, size: int, what: str | None = None) -> _Entry:
    e = _Entry(index=index, name=name, kind=kind, size=size)
    e.record = {"name": name, "outcome": None, "reason": None}
    e.parts, e.unsafe = _normalise(name)
    if e.parts:
        e.skip = _skip_reason(e.parts)
    if what is not None:
        e.problem = f"{what}, not extracted"
    return e


def _mark_collisions(entries: list[_Entry]) -> None:
    """Entries whose names are the same after normalisation (NFC, case-folding, '\\' vs '/')
    cannot be told apart on every file system: all of them go to unattributed/."""
    groups: dict[str, list[_Entry]] = {}
    for e in entries:
        if e.kind != "dir" and e.parts and not e.skip:
            key = unicodedata.normalize("NFC", "/".join(e.parts).casefold())
            groups.setdefault(key, []).append(e)
    for group in groups.values():
        if len(group) > 1:
            for e in group:
                others = [o.name for o in group if o is not e]
                e.unsafe = (f"name collides with {', '.join(repr(o) for o in others)} after "
                            f"normalisation (Unicode NFC, case, '\\' and '/')")
                e.parts = ()


# ---------------------------------------------------------------- reading with bounds


def _open_regular(path: Path):
    """A binary file object for a regular file, never through a symbolic link, never blocking."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Unusable(f"{_kind_of_mode(st.st_mode)[1] or 'not a regular file'}, not read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(path: Path, limit: int | None, max_mb: float | None) -> bytes:
    with _open_regular(path) as f:
        raw = f.read() if limit is None else f.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise _Unusable(size_reason(max(os.fstat(f.fileno()).st_size, len(raw)), max_mb))
    return raw


def _copy_stream(src, dest: Path, limit: int | None, max_mb: float | None, room: int | None = None,
                 declared: int | None = None) -> int:
    """Copy the file object `src` to `dest` CHUNK bytes at a time; stop as soon as it passes
    `limit` (per file) or `room` (what is left of the archive's total).  Returns the size."""
    part = dest.with_name(dest.name + ".part")
    n = 0
    try:
        with open(part, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                n += len(chunk)
                if limit is not None and n > limit:
                    said = "" if declared is None else f"the archive declared {mb_text(declared)} MB; "
                    raise _Unusable(f"over the {max_mb:,g} MB limit ({said}reading stopped at the limit)")
                if room is not None and n > room:
                    raise _ArchiveFull()
                out.write(chunk)
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()
    return n


# ---------------------------------------------------------------- zip


class _LenientZipFile(zipfile.ZipFile):
    """A ZipFile that reads the central directory entry by entry, used only where zipfile
    itself cannot open the archive (it stops at the first entry whose name is not valid UTF-8,
    whose version it does not support or whose extra field is corrupt).  Such an entry is kept
    with the problem noted (`problems`: index in infolist -> why), and a directory damaged
    part-way keeps the entries listed before the damage (`damaged`).  Follows CPython
    3.8-3.12's own reader."""
    damaged: str | None = None
    problems: dict[int, str]

    def _RealGetContents(self):
        zf = zipfile
        fp = self.fp
        endrec = zf._EndRecData(fp)
        if not endrec:
            raise zf.BadZipFile("File is not a zip file")
        size_cd, offset_cd = endrec[zf._ECD_SIZE], endrec[zf._ECD_OFFSET]
        self._comment = endrec[zf._ECD_COMMENT]
        concat = endrec[zf._ECD_LOCATION] - size_cd - offset_cd
        if endrec[zf._ECD_SIGNATURE] == zf.stringEndArchive64:
            concat -= (zf.sizeEndCentDir64 + zf.sizeEndCentDir64Locator)
        self.start_dir = offset_cd + concat
        if self.start_dir < 0:
            raise zf.BadZipFile("Bad offset for central directory")
        fp.seek(self.start_dir, 0)
        data = fp.read(size_cd)
        pos = 0
        self.problems = {}
        while pos < size_cd:
            head = data[pos:pos + zf.sizeCentralDir]
            if len(head) != zf.sizeCentralDir:
                self.damaged = f"truncated central directory after {len(self.filelist)} entries"
                break
            cd = struct.unpack(zf.structCentralDir, head)
            if cd[zf._CD_SIGNATURE] != zf.stringCentralDir:
                self.damaged = f"bad central directory record after {len(self.filelist)} entries"
                break
            pos += zf.sizeCentralDir
            raw_name = data[pos:pos + cd[zf._CD_FILENAME_LENGTH]]
            pos += cd[zf._CD_FILENAME_LENGTH]
            problems = []
            if cd[zf._CD_FLAG_BITS] & zf._MASK_UTF_FILENAME:
                try:
                    filename = raw_name.decode("utf-8")
                except UnicodeDecodeError:
                    filename = raw_name.decode("utf-8", "replace")
                    problems.append("its name is not valid UTF-8")
            else:
                filename = raw_name.decode(self.metadata_encoding or "cp437")
            x = zf.ZipInfo(filename)
            x.extra = data[pos:pos + cd[zf._CD_EXTRA_FIELD_LENGTH]]
            pos += cd[zf._CD_EXTRA_FIELD_LENGTH]
            x.comment = data[pos:pos + cd[zf._CD_COMMENT_LENGTH]]
            pos += cd[zf._CD_COMMENT_LENGTH]
            x.header_offset = cd[zf._CD_LOCAL_HEADER_OFFSET]
            (x.create_version, x.create_system, x.extract_version, x.reserved,
             x.flag_bits, x.compress_type, t, d,
             x.CRC, x.compress_size, x.file_size) = cd[1:12]
            if x.extract_version > zf.MAX_EXTRACT_VERSION:
                problems.append(f"zip version {x.extract_version / 10:.1f} is not supported")
            x.volume, x.internal_attr, x.external_attr = cd[15:18]
            x._raw_time = t
            x.date_time = ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)
            try:
                x._decodeExtra()
            except TypeError:            # newer CPython passes the name's CRC
                try:
                    x._decodeExtra(zf.crc32(raw_name))
                except Exception as exc:
                    problems.append(f"corrupt extra field ({exc})")
            except Exception as exc:
                problems.append(f"corrupt extra field ({exc})")
            x.header_offset = x.header_offset + concat
            if problems:
                self.problems[len(self.filelist)] = "; ".join(problems)
            self.filelist.append(x)
            self.NameToInfo[x.filename] = x


def _directory_problem(path: Path) -> str | None:
    """A zip whose directory lists more entries than MAX_ENTRIES, or whose directory alone is
    bigger than MAX_DIRECTORY_BYTES, is refused before zipfile reads that directory into
    memory (one ZipInfo, ~0.5 KB, per entry)."""
    try:
        with open(path, "rb") as fp:
            endrec = zipfile._EndRecData(fp)
        if not endrec:
            return None
        n, size = endrec[zipfile._ECD_ENTRIES_TOTAL], endrec[zipfile._ECD_SIZE]
    except Exception:
        return None                 # zipfile will say what is wrong
    if n > MAX_ENTRIES or size > MAX_DIRECTORY_BYTES:
        return (f"its directory lists {n:,} entries in {mb_text(size)} MB "
                f"(limits: {MAX_ENTRIES:,} entries, {mb_text(MAX_DIRECTORY_BYTES)} MB)")
    return None


def _open_zip(path: Path) -> tuple[zipfile.ZipFile | None, str | None]:
    why = _directory_problem(path)
    if why:
        return None, why
    try:
        return zipfile.ZipFile(path), None
    except Exception as exc:
        first = f"{exc.__class__.__name__}: {exc}"
    try:
        return _LenientZipFile(path), None
    except Exception:
        return None, f"cannot read its directory ({first})"


def _zip_entries(z: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    problems = getattr(z, "problems", None) or {}
    for i, info in enumerate(z.infolist()):
        name = info.filename
        try:
            kind, what = _kind_of_mode(info.external_attr >> 16)
            if name.replace("\\", "/").endswith("/"):
                kind, what = "dir", None
            e = _new_entry(i, name, kind, info.file_size, what)
            problem = problems.get(i)
            if problem and e.kind == "file":
                e.problem = f"cannot read this member of the zip: {problem}"
        except Exception as exc:     # a name no rule can handle: kept in the report
            e = _Entry(index=i, name=name, kind="file", unsafe=f"unusable name ({exc.__class__.__name__})")
            e.record = {"name": name, "outcome": None, "reason": None}
        e.info = info
        entries.append(e)
    return entries


def _mark_overlaps(entries: list[_Entry]) -> None:
    """A zip bomb's trick (overlapping files, D. Fifield 2019): many entries whose data are the
    same bytes of the archive, each within the limits, together terabytes.  An entry whose local
    header starts inside the previous entry's data (a header is at least 30 bytes) is never
    extracted, nor is the entry it overlaps.  A zip written by any archiver never has one."""
    located = sorted((e for e in entries if e.info is not None),
                     key=lambda e: (e.info.header_offset, e.index))
    why = "its data overlaps another entry's (a zip bomb's trick), not extracted"
    for a, b in zip(located, located[1:]):
        if b.info.header_offset < a.info.header_offset + 30 + a.info.compress_size:
            for e in (a, b):
                if e.kind == "file" and not e.skip and not e.problem:
                    e.problem = why


def _fit_archive(entries: list[_Entry], notebooks: list[str], limit: int | None, room: int | None,
                 max_archive_mb: float | None) -> str | None:
    """When the declared total of what would be extracted is over --max-archive-mb, nothing
    fails as a whole: the files named for a student and a notebook are extracted first, smaller
    before bigger, then the other files, as long as the total stays within the limit; each file
    left out is rejected with the reason.  Returns the warning, or None within the limit."""
    todo = [e for e in entries if e.kind == "file" and not e.skip and not e.problem
            and (e.info is not None or e.src is not None) and (limit is None or e.size <= limit)]
    declared = sum(e.size for e in todo)
    if room is None or declared <= room:
        return None

    def named(e: _Entry) -> bool:
        return bool(e.parts) and attribute(Path(*e.parts), notebooks) is not None
    used, left_out = 0, 0
    why = (f"not extracted: the archive declares {mb_text(declared)} MB uncompressed, over the "
           f"{max_archive_mb:,g} MB limit (--max-archive-mb); the students' notebooks and the "
           f"smaller files were extracted first")
    for e in sorted(todo, key=lambda e: (not named(e), e.size, e.index)):
        if used + e.size <= room:
            used += e.size
        else:
            e.problem, left_out = why, left_out + 1
    return (f"the archive's uncompressed total is {size_reason(declared, max_archive_mb)} "
            f"(--max-archive-mb): {left_out} file(s) left out, each rejected in collect_report.json")


def _stage_zip(z: zipfile.ZipFile, entries: list[_Entry], staging: Path, limit: int | None,
               max_mb: float | None, room: int | None, max_archive_mb: float | None) -> int:
    """Extract each file entry that will be used to staging/<index>, streaming, in bounds.
    Returns the bytes extracted."""
    total, full = 0, None
    for e in entries:
        if e.kind == "dir" or e.skip or e.problem and e.kind == "file":
            continue
        info = e.info
        try:
            if e.kind == "symlink":      # keep the link's target for the report, never the link
                with z.open(info) as f:
                    target = f.read(256).decode("utf-8", "replace")
                e.problem = f"a symbolic link (to {target!r}), not extracted"
                continue
            if e.kind != "file":
                continue
            if limit is not None and e.size > limit:         # declared: nothing is read
                e.problem = size_reason(e.size, max_mb)
                continue
            if full:
                e.problem = full
                continue
            dest = staging / str(e.index)
            with z.open(info) as f:
                n = _copy_stream(f, dest, limit, max_mb, None if room is None else room - total,
                                 declared=e.size)
            total += n
            e.src = dest
        except _ArchiveFull:
            full = (f"not extracted: the archive's uncompressed total passed the "
                    f"{max_archive_mb:,g} MB limit (--max-archive-mb) while streaming")
            e.problem = full
        except _Unusable as exc:
            e.problem = str(exc)
        except Exception as exc:     # CRC error, unsupported compression, encryption, ...
            e.problem = f"cannot read this member of the zip ({exc.__class__.__name__}: {exc})"
    return total


# ---------------------------------------------------------------- folder


def _folder_entries(root: Path, course_dir: Path) -> list[_Entry]:
    """The folder's files (and the folders it does not enter), never through a symbolic link."""
    entries: list[_Entry] = []

    def add(rel: str, kind: str, size: int = 0, what: str | None = None, skip: str | None = None):
        e = _new_entry(len(entries), rel, kind, size, what)
        if skip:
            e.skip = skip
        if kind == "file":
            e.src = root / rel
        entries.append(e)
        if len(entries) > MAX_ENTRIES:
            raise _Unusable(f"the folder holds more than {MAX_ENTRIES:,} entries")
        return e

    def onerror(exc: OSError):
        try:
            rel = Path(exc.filename).relative_to(root).as_posix()
        except Exception:
            rel = str(exc.filename)
        add(rel, "dir", skip=f"cannot list this folder ({exc.__class__.__name__}: {exc.strerror})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=onerror):
        d = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            p = d / name
            rel = p.relative_to(root).as_posix()
            try:
                if os.path.islink(p):
                    add(rel, "symlink", what="a symbolic link to a folder, not followed")
                    continue
                if p.resolve() == course_dir:
                    add(rel, "dir", skip="the grading folder itself, ignored")
                    continue
                parts, _ = _normalise(rel)
                why = _skip_reason(parts) if parts else None
                if why:
                    add(rel, "dir", skip=why)    # not entered: a .git or __MACOSX folder is one entry
                    continue
            except _Unusable:
                raise
            except Exception as exc:
                add(rel, "dir", skip=f"cannot look into this folder ({exc.__class__.__name__})")
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = d / name
            rel = p.relative_to(root).as_posix()
            try:
                st = os.lstat(p)
                kind, what = _kind_of_mode(st.st_mode)
                if kind == "symlink":
                    what = f"a symbolic link (to {os.readlink(p)[:200]!r}), not followed"
            except Exception as exc:
                add(rel, "special", what=f"cannot read it ({exc.__class__.__name__}: {exc})")
                continue
            add(rel, kind, st.st_size, what)
    return entries


# ---------------------------------------------------------------- placing


def _place(src: Path, part: Path, limit: int | None, max_mb: float | None) -> None:
    """Write the notebook to `part`, Colab's personal metadata stripped.  Bytes that are not a
    JSON document safe to parse (invalid syntax, nested too deep, ...) are written as they are:
    the grade step says why they are an invalid notebook, and so are the bytes of a notebook
    with nothing to strip.  Each copy is dropped as soon as the next exists (bytes, text,
    objects, written out in chunks): about twice the file in memory.  The rewritten notebook is
    indented like Jupyter's (indent 1), or compact where that would pass the size limit."""
    raw = _read_bounded(src, limit, max_mb)
    data = None
    if json_shape_problem(raw) is None:
        try:
            text = raw.decode("utf-8-sig")
            del raw
            data = json.loads(text)
            del text
        except (ValueError, RecursionError):
            data = None
    if not isinstance(data, dict) or not _strip(data):   # the bytes as they are
        data = None
        with _open_regular(src) as f:
            _copy_stream(f, part, limit, max_mb)
        return
    for indent in (1, None):
        try:
            _dump(data, part, indent, ensure_ascii=False)
        except UnicodeEncodeError:                # a lone surrogate ("\ud800"): keep it escaped
            _dump(data, part, indent, ensure_ascii=True)
        if limit is None or part.stat().st_size <= limit:
            break


def _dump(data, part: Path, indent: int | None, ensure_ascii: bool) -> None:
    separators = None if indent else (",", ":")
    with open(part, "w", encoding="utf-8") as f:
        for chunk in json.JSONEncoder(indent=indent, separators=separators,
                                      ensure_ascii=ensure_ascii).iterencode(data):
            for i in range(0, len(chunk), CHUNK):
                f.write(chunk[i:i + CHUNK])
        f.write("\n")


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._@()+ -]+")


class _Collector:
    def __init__(self, course_dir: Path, notebooks: list[str], limit: int | None, max_mb: float | None):
        self.course_dir, self.notebooks, self.limit, self.max_mb = course_dir, notebooks, limit, max_mb
        self.placed: dict[tuple, _Entry] = {}       # (student, notebook) -> entry kept
        self.rejected: dict[tuple, _Entry] = {}     # (student, notebook) -> entry of the marker
        self.duplicates: list[dict] = []
        self.unattributed: list[str] = []
        self.written: set[Path] = set()

    # paths -------------------------------------------------------------
    def _inside(self, p: Path) -> bool:
        try:
            p.resolve().relative_to(self.course_dir)
            return True
        except ValueError:
            return False

    def _usable(self, p: Path, base: Path) -> bool:
        try:
            if p in self.written or p.is_symlink() or (p.exists() and not p.is_file()):
                return False
            q = p.parent
            while q != base and base in q.parents:
                if q.is_symlink() or (q.exists() and not q.is_dir()):
                    return False
                q = q.parent
            return self._inside(p.parent if p.parent.exists() else base)
        except OSError:                  # e.g. a path longer than the system allows
            return False

    def free_path(self, base: Path, parts: tuple, e: _Entry) -> Path:
        """base/<parts> where that is free and safe, else base/_renamed/<index>_<safe name>."""
        if parts:
            cand = base.joinpath(*parts)
            if self._usable(cand, base):
                return cand
        stem = _SAFE_CHARS.sub("_", e.name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
        stem = stem.lstrip(". ")[:100] or "entry"
        folder = base / "_renamed"
        for k in itertools.count(1):    # an entry may itself be called "_renamed"
            if not folder.is_symlink() and (folder.is_dir() or not folder.exists()):
                break
            folder = base / f"_renamed-{k}"
        cand = folder / f"{e.index:05d}_{stem}"
        for k in itertools.count(1):
            if not (cand.exists() or cand.is_symlink() or cand in self.written):
                return cand
            cand = folder / f"{e.index:05d}-{k}_{stem}"

    def _rel(self, p: Path) -> str:
        return p.relative_to(self.course_dir).as_posix()

    def copy_to(self, e: _Entry, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self._inside(dest.parent):
            raise _Unusable("its destination would be outside the course folder")
        with _open_regular(e.src) as f:
            _copy_stream(f, dest, self.limit, self.max_mb)
        self.written.add(dest)

    def notebook_path(self, who: tuple) -> Path:
        return self.course_dir / "submitted" / who[0] / ASSIGNMENT / f"{who[1]}.ipynb"

    def _clear(self, dest: Path) -> None:
        for p in (dest, rejected_marker(dest)):
            if p.is_symlink() or p.is_file():
                p.unlink()

    # outcomes ----------------------------------------------------------
    def handle(self, e: _Entry) -> None:
        rec = e.record
        if e.kind == "dir":
            rec.update(outcome="skipped", reason=e.skip or (
                f"folder with an unsafe name ({e.unsafe}), nothing written" if e.unsafe else "folder"))
            return
        if e.unsafe:
            if e.problem or e.src is None:
                rec.update(outcome="rejected", reason=f"{e.unsafe}; {e.problem or 'not extracted'}")
                return
            dest = self.free_path(self.course_dir / "unattributed", (), e)
            self.copy_to(e, dest)
            self.unattributed.append(e.name)
            rec.update(outcome="unattributed", reason=f"{e.unsafe}: kept under a generated name",
                       saved_as=self._rel(dest))
            return
        if e.skip:
            rec.update(outcome="skipped", reason=e.skip)
            return
        e.who = attribute(Path(*e.parts), self.notebooks)
        if e.problem or e.src is None:
            self.reject(e, e.problem or "not extracted")
            return
        if e.who is None:
            dest = self.free_path(self.course_dir / "unattributed", e.parts, e)
            self.copy_to(e, dest)
            self.unattributed.append(e.name)
            rec.update(outcome="unattributed", saved_as=self._rel(dest),
                       reason="no student id and notebook name in its name (see the naming rule)")
            return
        self.place(e)

    def reject(self, e: _Entry, reason: str) -> None:
        e.record.update(outcome="rejected", reason=reason)
        if e.who is None:
            return
        s, nb = e.who
        e.record.update(student=s, notebook=nb)
        kept = self.placed.get(e.who)
        if kept is not None:
            e.record["reason"] = f"{reason}; the usable file {kept.name!r} is kept for {s}/{nb}"
            return
        dest = self.notebook_path(e.who)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self._inside(dest.parent):
            raise _Unusable("its destination would be outside the course folder")
        self._clear(dest)
        marker = rejected_marker(dest)
        marker.write_text(json.dumps({"reason": reason, "source": e.name}, ensure_ascii=True) + "\n")
        self.rejected[e.who] = e
        e.record["marker"] = self._rel(marker)

    def place(self, e: _Entry) -> None:
        s, nb = e.who
        dest = self.notebook_path(e.who)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self._inside(dest.parent):
            raise _Unusable("its destination would be outside the course folder")
        part = dest.with_name(dest.name + ".part")
        try:
            _place(e.src, part, self.limit, self.max_mb)
            prev = self.placed.get(e.who)
            if prev is not None:   # the later file (by name: "(2)" after "(1)") wins; both reported
                dup = self.free_path(self.course_dir / "unattributed" / "duplicates", prev.parts, prev)
                self.copy_to(prev, dup)
                self.duplicates.append({"student": s, "notebook": nb, "kept": e.name, "replaced": prev.name})
                prev.record.update(outcome="duplicate", saved_as=self._rel(dup),
                                   reason=f"a later file for {s}/{nb} is kept: {e.name!r}")
            if dest.is_symlink() or dest.is_dir():
                raise _Unusable(f"{self._rel(dest)} is not a plain file")
            os.replace(part, dest)
        finally:
            if part.exists():
                part.unlink()
        marker = rejected_marker(dest)
        if marker.is_symlink() or marker.is_file():
            marker.unlink()
        self.placed[e.who] = e
        earlier = self.rejected.pop(e.who, None)
        if earlier is not None:
            earlier.record.pop("marker", None)
            earlier.record["reason"] += f"; the usable file {e.name!r} is kept for {s}/{nb}"
        e.record.update(outcome="placed", reason=None, student=s, notebook=nb, saved_as=self._rel(dest))

    def guarded(self, e: _Entry) -> None:
        """handle(e); any failure at all becomes this entry's record (and its student's marker)."""
        try:
            self.handle(e)
        except Exception as exc:
            why = str(exc) if isinstance(exc, _Unusable) else \
                f"collect failed on this file ({exc.__class__.__name__}: {str(exc)[:300]})"
            e.record.pop("saved_as", None)
            try:
                self.reject(e, why)
            except Exception as exc2:
                e.record.update(outcome="rejected",
                                reason=f"{why}; no marker could be written ({exc2.__class__.__name__})")


# ---------------------------------------------------------------- the step


def _write_report(course_dir: Path, report: dict) -> None:
    path = course_dir / "collect_report.json"
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(report, indent=1))
    os.replace(part, path)


def _fail(course_dir: Path, submissions: Path, entries: list[_Entry], message: str) -> int:
    for e in entries:
        e.record.update(outcome="rejected", reason=f"not extracted: {message}")
    _write_report(course_dir, {"source": str(submissions), "error": message, "placed": {},
                               "unattributed": [], "duplicates": [], "rejected": [],
                               "entries": [e.record for e in entries]})
    print(f"collect: {submissions}: {message}; nothing was collected", file=sys.stderr)
    return 1


def run(course_dir: Path, submissions: Path, clean: bool = False,
        max_notebook_mb: float | None = MAX_NOTEBOOK_MB,
        max_archive_mb: float | None = MAX_ARCHIVE_MB) -> int:
    """Collect `submissions` (a zip or a folder) into `course_dir`.  Returns 0 when the run
    completed -- whatever single files were rejected -- and 1 when the archive as a whole
    could not be used (not a zip or folder, unreadable directory, too many entries)."""
    course_dir, submissions = Path(course_dir).resolve(), Path(submissions).resolve()
    notebooks = notebook_names(course_dir / "source" / ASSIGNMENT)
    limit, room = limit_bytes(max_notebook_mb), limit_bytes(max_archive_mb)
    if clean:
        for d in ("submitted", "unattributed", "results", "autograded", "feedback"):
            shutil.rmtree(course_dir / d, ignore_errors=True)
    course_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".collect-staging-", dir=course_dir))
    z = None
    notes: list[str] = []
    try:
        if submissions.is_file() and zipfile.is_zipfile(submissions):
            z, why = _open_zip(submissions)
            if z is None:
                return _fail(course_dir, submissions, [], why)
            if getattr(z, "damaged", None):
                notes.append(f"the zip's directory is damaged ({z.damaged}); later entries cannot be listed")
            if len(z.infolist()) > MAX_ENTRIES:
                return _fail(course_dir, submissions, [],
                             f"{len(z.infolist()):,} entries > {MAX_ENTRIES:,} limit")
            entries = _zip_entries(z)
        elif submissions.is_dir():
            try:
                entries = _folder_entries(submissions, course_dir)
            except Exception as exc:
                return _fail(course_dir, submissions, [], str(exc) if isinstance(exc, _Unusable)
                             else f"cannot walk the folder ({exc.__class__.__name__}: {exc})")
        else:
            print(f"collect: {submissions} is neither a zip file nor a folder", file=sys.stderr)
            return 1
        _mark_collisions(entries)
        _mark_overlaps(entries)
        # the archive's total, as declared, of what would be extracted: checked before anything is
        over = _fit_archive(entries, notebooks, limit, room, max_archive_mb)
        if over:
            notes.append(over)
        if z is not None:
            _stage_zip(z, entries, staging, limit, max_notebook_mb, room, max_archive_mb)
        elif limit is not None:
            for e in entries:
                if e.kind == "file" and e.src is not None and not e.problem and e.size > limit:
                    e.problem = size_reason(e.size, max_notebook_mb)
        col = _Collector(course_dir, notebooks, limit, max_notebook_mb)
        for e in sorted(entries, key=lambda e: (e.parts == (), e.parts, e.index)):
            col.guarded(e)
    finally:
        if z is not None:
            z.close()
        shutil.rmtree(staging, ignore_errors=True)

    records = [e.record for e in entries]
    rejected = [r for r in records if r["outcome"] == "rejected"]
    counts = {o: sum(r["outcome"] == o for r in records) for o in OUTCOMES}
    report = {"source": str(submissions),
              "limits": {"max_notebook_mb": max_notebook_mb, "max_archive_mb": max_archive_mb,
                         "mb": "MiB (2**20 bytes)"},
              "placed": {f"{s}/{n}": e.name for (s, n), e in sorted(col.placed.items())},
              "unattributed": col.unattributed, "duplicates": col.duplicates, "rejected": rejected,
              "counts": counts, "notes": notes, "entries": records}
    _write_report(course_dir, report)
    students = sorted({s for s, _ in col.placed} | {s for s, _ in col.rejected})
    print(f"collect: {len(col.placed)} notebook(s) from {len(students)} student(s) -> "
          f"{course_dir / 'submitted'}; {len(records)} entries: "
          + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    for note in notes:
        print(f"collect: WARNING {note}", file=sys.stderr)
    for u in col.unattributed:
        print(f"collect: WARNING cannot attribute {u!r} (kept in {course_dir / 'unattributed'}; "
              f"rename it <student_id>__<notebook>.ipynb and collect again)", file=sys.stderr)
    for d in col.duplicates:
        print(f"collect: WARNING two files for {d['student']}/{d['notebook']}: kept {d['kept']!r}, "
              f"set aside {d['replaced']!r}", file=sys.stderr)
    for r in rejected:
        who = f" ({r['student']}/{r['notebook']}: invalid notebook)" if "marker" in r else ""
        print(f"collect: WARNING rejected {r['name']!r}{who}: {r['reason']}", file=sys.stderr)
    if any("MB limit" in r["reason"] for r in rejected):
        print("collect: (raise the limits with --max-notebook-mb / --max-archive-mb)", file=sys.stderr)
    return 0
