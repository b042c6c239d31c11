"""Hostile archives and files for `collect` and the notebook reader, unit level and fast: each
test calls collect.run / read_notebook directly on tiny zips and folders synthesised in
tmp_path.  Every entry of an archive is accounted for in collect_report.json, one bad file
never stops the others, nothing is read whole or written outside the course folder."""
import json
import os
import stat
import struct
import sys
import unicodedata
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograde import collect  # noqa: E402
from autograde.collect import rejected_marker, rejected_reason, run  # noqa: E402
from autograde.integrity import read_notebook  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "week06" / "day0_fixture.ipynb"
NB = "day0_fixture"
MIB = 1 << 20
OUTCOMES = {"placed", "unattributed", "duplicate", "rejected", "skipped"}


@pytest.fixture
def course(tmp_path):
    """A course folder as collect needs it: only the notebook names of source/week06."""
    c = tmp_path / "course"
    (c / "source" / "week06").mkdir(parents=True)
    (c / "source" / "week06" / f"{NB}.ipynb").write_bytes(FIXTURE.read_bytes())
    return c


def good() -> bytes:
    return FIXTURE.read_bytes()


def padded(nbytes: int) -> bytes:
    """A notebook whose JSON holds a string of spaces: `nbytes` long, compresses to nothing."""
    head, tail = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "pad": "', b'"}'
    return head + b" " * (nbytes - len(head) - len(tail)) + tail


def deep(levels: int = 200_000) -> bytes:
    return b'{"cells": [], "x": ' + b"[" * levels + b"]" * levels + b"}"


def report(course) -> dict:
    return json.loads((course / "collect_report.json").read_text())


def entry(rep, name) -> dict:
    found = [e for e in rep["entries"] if e["name"] == name]
    assert len(found) == 1, (name, [e["name"] for e in rep["entries"]])
    return found[0]


def submitted(course, student) -> Path:
    return course / "submitted" / student / "week06" / f"{NB}.ipynb"


def zinfo(name, mode=None, compress=zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    i = zipfile.ZipInfo(name)
    i.compress_type = compress
    i.create_system = 3
    if mode is not None:
        i.external_attr = mode << 16
    return i


def declare_sizes(monkeypatch, size: int) -> None:
    """Make collect believe every entry declares `size` bytes (its own check while streaming is
    then all that stands between it and the real size)."""
    real_entries = collect._zip_entries

    def lying(zf):
        entries = real_entries(zf)
        for e in entries:
            e.size = size
        return entries
    monkeypatch.setattr(collect, "_zip_entries", lying)


def files_outside(tmp_path, course) -> list[str]:
    return sorted(str(p) for p in tmp_path.rglob("*") if course not in p.parents and p != course)


def test_deep_nesting_is_one_invalid_row_and_the_run_completes(course, tmp_path):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr(f"alice__{NB}.ipynb", good())
        f.writestr(f"bob__{NB}.ipynb", deep())
        f.writestr(f"carol/{NB}.ipynb", good())
    assert run(course, z) == 0
    assert read_notebook(submitted(course, "alice")).valid and read_notebook(submitted(course, "carol")).valid
    # placed as it was (bytes, not parsed), invalid at grade time with the reason
    assert submitted(course, "bob").read_bytes() == deep()
    chk = read_notebook(submitted(course, "bob"))
    assert not chk.valid and "nested deeper than 100 levels" in chk.error
    rep = report(course)
    assert set(rep["placed"]) == {f"alice/{NB}", f"bob/{NB}", f"carol/{NB}"}


def test_big_entry_gets_a_marker_and_is_never_extracted(course, tmp_path, monkeypatch):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr(f"alice__{NB}.ipynb", good())
        f.writestr(f"dave__{NB}.ipynb", padded(3 * MIB))      # 3 MB > 1 MB limit
        f.writestr("huge_dataset.csv", b"1," * (2 * MIB))     # unattributable and too big
    submitted(course, "dave").parent.mkdir(parents=True)
    submitted(course, "dave").write_text("{}")                # stale from an earlier collect
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(getattr(name, "filename", name)), real_open(self, name, *a, **k))[1])
    assert run(course, z, max_notebook_mb=1) == 0
    assert opened == [f"alice__{NB}.ipynb"]                   # declared too big: never opened
    assert not submitted(course, "dave").exists()
    marker = rejected_marker(submitted(course, "dave"))
    assert marker == submitted(course, "dave").with_name(f"{NB}.rejected.json")
    assert json.loads(marker.read_text()) == {"reason": "3 MB > 1 MB limit", "source": f"dave__{NB}.ipynb"}
    assert rejected_reason(submitted(course, "dave")) == "3 MB > 1 MB limit"
    assert rejected_reason(submitted(course, "alice")) is None
    assert read_notebook(submitted(course, "dave")).error == "3 MB > 1 MB limit"
    rep = report(course)
    d = entry(rep, f"dave__{NB}.ipynb")
    assert d["outcome"] == "rejected" and d["student"] == "dave" and d["marker"].endswith(".rejected.json")
    h = entry(rep, "huge_dataset.csv")
    assert h["outcome"] == "rejected" and h["reason"] == "4 MB > 1 MB limit" and "marker" not in h
    assert not (course / "unattributed" / "huge_dataset.csv").exists()
    # a later good file for dave replaces the marker
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(f"dave__{NB}.ipynb", good())
    assert run(course, z, max_notebook_mb=1) == 0
    assert read_notebook(submitted(course, "dave")).valid and not marker.exists()


def test_size_message_reads_like_the_issue():
    assert collect.size_reason(1536 * MIB, 100) == "1,536 MB > 100 MB limit"
    assert collect.size_reason(5000 * MIB, 4096) == "5,000 MB > 4,096 MB limit"


def test_declared_size_that_lies_streaming_stops_at_the_limit(course, tmp_path, monkeypatch):
    """zipfile never returns more than a member's declared size, so a lying zip is a CRC
    error (second half); collect's own count while streaming is checked by making collect
    believe a small declared size for a 3 MB member (first half)."""
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(zinfo(f"erin__{NB}.ipynb", compress=zipfile.ZIP_STORED), padded(3 * MIB))
        f.writestr(f"alice__{NB}.ipynb", good())
    read, real_read = [], zipfile.ZipExtFile.read
    declare_sizes(monkeypatch, 100)
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: (lambda b: (read.append(len(b)), b)[1])(real_read(self, n)))
    assert run(course, z, max_notebook_mb=1) == 0
    assert sum(read) <= 1 * MIB + collect.CHUNK + len(good())   # stopped after limit + 1 chunk
    e = entry(report(course), f"erin__{NB}.ipynb")
    assert e["outcome"] == "rejected" and "over the 1 MB limit" in e["reason"]
    assert rejected_reason(submitted(course, "erin")) == e["reason"]
    assert not list(course.glob(".collect-staging-*")) and not list(course.rglob("*.part"))
    monkeypatch.undo()

    # a real lie: the central directory says 1,000 bytes for 3 MB of data
    raw = bytearray(z.read_bytes())
    cd = raw.index(b"PK\x01\x02")                      # the first central directory record
    struct.pack_into("<L", raw, cd + 24, 1000)         # its uncompressed size
    z.write_bytes(bytes(raw))
    assert run(course, z, max_notebook_mb=1) == 0
    e = entry(report(course), f"erin__{NB}.ipynb")
    assert e["outcome"] == "rejected" and "cannot read this member" in e["reason"] and "CRC" in e["reason"]
    assert read_notebook(submitted(course, "alice")).valid


def test_zip_slip_absolute_and_odd_names_go_to_unattributed(course, tmp_path):
    z = tmp_path / "class.zip"
    names = [f"../../x__{NB}.ipynb", f"a/../../../y__{NB}.ipynb", f"/etc/z__{NB}.ipynb",
             f"C:\\Users\\w\\v__{NB}.ipynb", f"\\\\server\\share\\u__{NB}.ipynb", "bad\x01name.txt",
             f"..__{NB}.ipynb"]
    too_long, too_deep = "a" * 300 + ".txt", "/".join(["d" * 200] * 25) + "/f.txt"
    with zipfile.ZipFile(z, "w") as f:
        for n in names + [too_long, too_deep]:
            f.writestr(zinfo(n), good())
        f.writestr(f"alice__{NB}.ipynb", good())
    before = files_outside(tmp_path, course)
    assert run(course, z) == 0
    assert files_outside(tmp_path, course) == before           # nothing written outside the course
    rep = report(course)
    for n in names[:-1]:
        e = entry(rep, n)
        assert e["outcome"] == "unattributed", e
        assert e["reason"].split(":")[0] in ("absolute path", "path with '..'",
                                             "name with control characters or bytes that are not UTF-8")
        saved = course / e["saved_as"]
        assert saved.is_file() and saved.read_bytes() == good()
        assert saved.parent == course / "unattributed" / "_renamed"
        assert n in rep["unattributed"]
    assert "longer than 255 bytes" in entry(rep, too_long)["reason"]
    deep_entry = entry(rep, too_deep)                          # a path longer than PATH_MAX
    assert deep_entry["outcome"] == "unattributed" and deep_entry["saved_as"].startswith("unattributed/_renamed/")
    assert "path with '..'" in entry(rep, names[0])["reason"]
    assert "absolute path" in entry(rep, names[2])["reason"] and "absolute path" in entry(rep, names[3])["reason"]
    # a student id is never '..' (and a dot file is skipped as hidden): nothing in submitted/..
    assert entry(rep, f"..__{NB}.ipynb")["outcome"] == "skipped"
    assert collect.attribute(Path(f"..__{NB}.ipynb"), [NB]) is None
    assert collect.attribute(Path(f"./..__{NB}.ipynb"), [NB]) is None
    assert not (course / "week06").exists()
    assert set(rep["placed"]) == {f"alice/{NB}"}


def test_symlinks_devices_and_fifos_are_never_extracted(course, tmp_path):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(zinfo(f"frank__{NB}.ipynb", stat.S_IFLNK | 0o777), "/etc/passwd")
        f.writestr(zinfo("link_to_home", stat.S_IFLNK | 0o777), "/root")
        f.writestr(zinfo("fifo", stat.S_IFIFO | 0o644), "")
        f.writestr(zinfo(f"gina__{NB}.ipynb", stat.S_IFCHR | 0o644), "")
        f.writestr(zinfo("blk", stat.S_IFBLK | 0o644), "")
        f.writestr(zinfo(f"alice__{NB}.ipynb", stat.S_IFREG | 0o644), good())
    assert run(course, z) == 0
    rep = report(course)
    fr = entry(rep, f"frank__{NB}.ipynb")
    assert fr["outcome"] == "rejected" and "symbolic link" in fr["reason"] and "/etc/passwd" in fr["reason"]
    assert rejected_reason(submitted(course, "frank")) == fr["reason"]
    assert "character device" in rejected_reason(submitted(course, "gina"))
    for n, what in (("link_to_home", "symbolic link"), ("fifo", "fifo"), ("blk", "block device")):
        e = entry(rep, n)
        assert e["outcome"] == "rejected" and what in e["reason"] and "saved_as" not in e
    links = [p for p in course.rglob("*") if p.is_symlink() or (p.exists() and not (p.is_file() or p.is_dir()))]
    assert links == []
    assert not (course / "unattributed").exists() or not any((course / "unattributed").iterdir())
    assert read_notebook(submitted(course, "alice")).valid


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_names_that_collide_after_normalisation(course, tmp_path):
    z = tmp_path / "class.zip"
    nfc, nfd = unicodedata.normalize("NFC", "hà"), unicodedata.normalize("NFD", "hà")
    groups = [[f"Eve__{NB}.ipynb", f"eve__{NB}.ipynb"],
              [f"{nfc}/notes.txt", f"{nfd}/notes.txt"],
              [f"hank\\{NB}.ipynb", f"hank/{NB}.ipynb"],
              [f"ivy__{NB}.ipynb", f"ivy__{NB}.ipynb"]]            # the same name twice
    with zipfile.ZipFile(z, "w") as f:
        for g in groups:
            for n in g:
                f.writestr(n, good())
        f.writestr(f"alice__{NB}.ipynb", good())
    assert run(course, z) == 0
    rep = report(course)
    records = {}
    for e in rep["entries"]:
        records.setdefault(e["name"], []).append(e)
    for g in groups:
        for n in g:
            for e in records[n]:
                assert e["outcome"] == "unattributed" and "collides" in e["reason"], e
                assert (course / e["saved_as"]).read_bytes() == good()
    saved = [e["saved_as"] for g in groups for n in set(g) for e in records[n]]
    assert len(saved) == len(set(saved)) == 8
    assert set(rep["placed"]) == {f"alice/{NB}"}


def test_corrupt_member_is_that_file_only(course, tmp_path):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(zinfo(f"jack__{NB}.ipynb", compress=zipfile.ZIP_STORED), good())
        f.writestr(zinfo("notes.txt", compress=zipfile.ZIP_DEFLATED), b"hello " * 1000)
        f.writestr(f"alice__{NB}.ipynb", good())
    raw = bytearray(z.read_bytes())
    raw[raw.index(b'"cells"')] ^= 0xFF                 # one byte of jack's stored data: CRC error
    i = raw.index(b"PK\x03\x04", raw.index(b"PK\x03\x04") + 4)   # notes.txt: unsupported compression
    struct.pack_into("<H", raw, i + 8, 99)
    cd = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)
    struct.pack_into("<H", raw, cd + 10, 99)
    z.write_bytes(bytes(raw))
    assert run(course, z) == 0
    rep = report(course)
    j = entry(rep, f"jack__{NB}.ipynb")
    assert j["outcome"] == "rejected" and "Bad CRC-32" in j["reason"]
    assert rejected_reason(submitted(course, "jack")) == j["reason"]
    n = entry(rep, "notes.txt")
    assert n["outcome"] == "rejected" and "NotImplementedError" in n["reason"]
    assert read_notebook(submitted(course, "alice")).valid


def test_bad_directory_entry_does_not_stop_the_archive(course, tmp_path):
    """zipfile refuses a whole archive for one entry whose name is not UTF-8 (UTF-8 flag set)
    or whose version it does not know; collect lists the others and rejects that one."""
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(f"kim__{NB}.ipynb", good())
        f.writestr(f"alice__{NB}.ipynb", good())
        f.writestr("x" * 12, b"abc")
    raw = bytearray(z.read_bytes())
    first = raw.index(b"PK\x01\x02")
    struct.pack_into("<H", raw, first + 6, 99)          # kim: extract version 9.9
    last = raw.rindex(b"PK\x01\x02")
    name_at = last + 46
    raw[name_at:name_at + 12] = b"\xff\xfe" + b"x" * 10  # not UTF-8 ...
    flags = struct.unpack_from("<H", raw, last + 8)[0]
    struct.pack_into("<H", raw, last + 8, flags | 0x800)   # ... but flagged as UTF-8
    z.write_bytes(bytes(raw))
    with pytest.raises(Exception):
        zipfile.ZipFile(z)
    assert run(course, z) == 0
    rep = report(course)
    assert len(rep["entries"]) == 3
    assert entry(rep, f"kim__{NB}.ipynb")["outcome"] == "rejected"
    assert "9.9" in rejected_reason(submitted(course, "kim"))
    odd = [e for e in rep["entries"] if e["name"].endswith("x" * 10)]
    assert odd[0]["outcome"] == "rejected" and "UTF-8" in odd[0]["reason"]
    assert read_notebook(submitted(course, "alice")).valid


def test_every_entry_is_accounted_for(course, tmp_path):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("class/", b"")
        f.writestr("class/alice/", b"")
        f.writestr(f"class/alice/{NB}.ipynb", good())           # sorts last: kept
        f.writestr(f"class/alice/{NB} (2).ipynb", good())       # duplicates: set aside
        f.writestr(f"class/alice/Copy of {NB}.ipynb", good())
        f.writestr("__MACOSX/", b"")
        f.writestr(f"__MACOSX/class/alice/._{NB}.ipynb", b"\x00\x05\x16\x07")
        f.writestr("class/.DS_Store", b"\x00")
        f.writestr(f"class/bob/.ipynb_checkpoints/{NB}-checkpoint.ipynb", good())
        f.writestr("class/.hidden", b"x")
        f.writestr(f"class/bob/{NB}.ipynb", b"not json")
        f.writestr("class/readme.txt", b"hello")
        f.writestr(f"../../x__{NB}.ipynb", good())
        f.writestr(zinfo("class/link", stat.S_IFLNK | 0o777), "/etc")
        f.writestr(f"class/cat__{NB}.ipynb", padded(2 * MIB))
        f.writestr(f"class/dan__{NB}.ipynb", deep(5000))
    assert run(course, z, max_notebook_mb=1) == 0
    rep = report(course)
    with zipfile.ZipFile(z) as f:
        infos = f.infolist()
    assert len(rep["entries"]) == len(infos) == 16
    assert [e["name"] for e in rep["entries"]] == [i.filename for i in infos]
    for e in rep["entries"]:
        assert e["outcome"] in OUTCOMES, e
        assert e["outcome"] == "placed" or e["reason"], e
    assert sum(rep["counts"].values()) == len(infos)
    by = {e["name"]: e for e in rep["entries"]}
    assert by["class/"]["outcome"] == "skipped" and by["__MACOSX/"]["reason"] == "macOS resource fork, ignored"
    assert by[f"__MACOSX/class/alice/._{NB}.ipynb"]["reason"] == "macOS resource fork, ignored"
    assert by["class/.DS_Store"]["outcome"] == "skipped"
    assert "checkpoint" in by[f"class/bob/.ipynb_checkpoints/{NB}-checkpoint.ipynb"]["reason"]
    assert by[f"class/alice/{NB}.ipynb"]["outcome"] == "placed"
    assert {by[f"class/alice/{NB} (2).ipynb"]["outcome"], by[f"class/alice/Copy of {NB}.ipynb"]["outcome"]} == {"duplicate"}
    assert len(rep["duplicates"]) == 2
    assert by[f"class/bob/{NB}.ipynb"]["outcome"] == "placed"         # placed, invalid at grade time
    assert not read_notebook(submitted(course, "bob")).valid
    assert by[f"class/cat__{NB}.ipynb"]["outcome"] == "rejected"
    assert by[f"class/dan__{NB}.ipynb"]["outcome"] == "placed"
    assert by["class/readme.txt"]["outcome"] == "unattributed"
    assert by[f"../../x__{NB}.ipynb"]["outcome"] == "unattributed"
    assert by["class/link"]["outcome"] == "rejected"
    assert sorted(rep["unattributed"]) == sorted(["class/readme.txt", f"../../x__{NB}.ipynb"])


def test_archive_total_over_the_limit_keeps_the_notebooks(course, tmp_path, capsys):
    """Declared total over --max-archive-mb: nothing fails as a whole; the students' notebooks
    (smaller first) are extracted until the limit, every file left out is its own record."""
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("dataset.bin", b"0" * int(0.8 * MIB))               # first in the archive
        for s, size in (("a1", 0.5), ("a2", 0.9), ("a3", 0.6)):
            f.writestr(f"{s}__{NB}.ipynb", padded(int(size * MIB)))
    assert run(course, z, max_notebook_mb=1, max_archive_mb=1.2) == 0
    err = capsys.readouterr().err
    assert "--max-archive-mb" in err and "2.8 MB > 1.2 MB limit" in err
    rep = report(course)
    assert set(rep["placed"]) == {f"a1/{NB}", f"a3/{NB}"}               # 0.5 + 0.6 <= 1.2
    for name in (f"a2__{NB}.ipynb", "dataset.bin"):
        e = entry(rep, name)
        assert e["outcome"] == "rejected" and "--max-archive-mb" in e["reason"], e
    assert "--max-archive-mb" in rejected_reason(submitted(course, "a2"))
    assert not (course / "unattributed" / "dataset.bin").exists()
    assert "--max-archive-mb" in rep["notes"][0]
    assert run(course, z, max_notebook_mb=1, max_archive_mb=3) == 0
    assert len(report(course)["placed"]) == 3 and not rejected_marker(submitted(course, "a2")).exists()


def test_overlapping_entries_zip_bomb(course, tmp_path):
    """Two directory records that point at the same data (the overlapping-files bomb): neither
    is extracted; the other entries are."""
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr(f"alice__{NB}.ipynb", good())
        f.writestr(f"carol__{NB}.ipynb", good())
    raw = bytearray(z.read_bytes())
    cd = raw.index(b"PK\x01\x02")
    n, m, k = struct.unpack_from("<3H", raw, cd + 28)
    record = bytearray(raw[cd:cd + 46 + n + m + k])
    record[46:46 + 5] = b"bobby"                         # same length: bobby__day0_fixture.ipynb
    eocd = raw.rindex(b"PK\x05\x06")
    count, size = struct.unpack_from("<HHL", raw, eocd + 8)[0], struct.unpack_from("<L", raw, eocd + 12)[0]
    struct.pack_into("<HHL", raw, eocd + 8, count + 1, count + 1, size + len(record))
    raw[eocd:eocd] = record                              # appended to the central directory
    z.write_bytes(bytes(raw))
    with zipfile.ZipFile(z) as f:
        assert [i.header_offset for i in f.infolist()].count(0) == 2
    assert run(course, z) == 0
    rep = report(course)
    assert set(rep["placed"]) == {f"carol/{NB}"}
    for s in ("alice", "bobby"):
        assert "overlaps another entry" in rejected_reason(submitted(course, s))


def test_archive_total_enforced_while_streaming(course, tmp_path, monkeypatch):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        for s in ("a1", "a2", "a3"):
            f.writestr(f"{s}__{NB}.ipynb", padded(int(0.9 * MIB)))
    declare_sizes(monkeypatch, 10)
    assert run(course, z, max_notebook_mb=1, max_archive_mb=2) == 0
    rep = report(course)
    assert set(rep["placed"]) == {f"a1/{NB}", f"a2/{NB}"}             # what was extracted is graded
    assert "--max-archive-mb" in entry(rep, f"a3__{NB}.ipynb")["reason"]
    assert "--max-archive-mb" in rejected_reason(course / "submitted/a3/week06" / f"{NB}.ipynb")


def test_one_failure_anywhere_is_one_record(course, tmp_path, monkeypatch):
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(f"alice__{NB}.ipynb", good())
        f.writestr(f"boom__{NB}.ipynb", good())
        f.writestr(f"zed__{NB}.ipynb", good())
    real = collect._place

    def place(src, part, *a):
        if Path(src).read_bytes() and "boom" in str(part.parent.parent.name):
            raise MemoryError()
        return real(src, part, *a)
    monkeypatch.setattr(collect, "_place", place)
    assert run(course, z) == 0
    rep = report(course)
    assert set(rep["placed"]) == {f"alice/{NB}", f"zed/{NB}"}
    b = entry(rep, f"boom__{NB}.ipynb")
    assert b["outcome"] == "rejected" and "MemoryError" in b["reason"]
    assert "MemoryError" in rejected_reason(submitted(course, "boom"))


def test_folder_symlinks_are_not_followed(course, tmp_path):
    secret = tmp_path / "outside" / f"mallory__{NB}.ipynb"
    secret.parent.mkdir()
    secret.write_bytes(good())
    sub = tmp_path / "subs"
    (sub / "alice").mkdir(parents=True)
    (sub / "alice" / f"{NB}.ipynb").write_bytes(good())
    (sub / f"mallory__{NB}.ipynb").symlink_to(secret)
    (sub / "elsewhere").symlink_to(secret.parent, target_is_directory=True)
    (sub / "broken").symlink_to(tmp_path / "nothing")
    os.mkfifo(sub / f"nora__{NB}.ipynb")                       # would block a plain open()
    (sub / ".git").mkdir()
    (sub / ".git" / "config").write_text("x")
    (sub / f"big__{NB}.ipynb").write_bytes(padded(2 * MIB))
    assert run(course, sub, max_notebook_mb=1) == 0
    rep = report(course)
    m = entry(rep, f"mallory__{NB}.ipynb")
    assert m["outcome"] == "rejected" and "symbolic link" in m["reason"]
    assert "symbolic link" in rejected_reason(submitted(course, "mallory"))
    assert "not followed" in entry(rep, "elsewhere")["reason"]
    assert entry(rep, "broken")["outcome"] == "rejected"
    assert "fifo" in rejected_reason(submitted(course, "nora"))
    assert entry(rep, ".git")["outcome"] == "skipped"             # one entry, not entered
    assert rejected_reason(submitted(course, "big")) == "2 MB > 1 MB limit"
    assert set(rep["placed"]) == {f"alice/{NB}"}
    assert not any(p.is_symlink() for p in course.rglob("*"))


def test_rejected_reason_never_raises(tmp_path):
    nb = tmp_path / "s" / "week06" / f"{NB}.ipynb"
    assert rejected_reason(nb) is None
    nb.parent.mkdir(parents=True)
    rejected_marker(nb).write_bytes(b"\xff\x00 not json")
    assert rejected_reason(nb) == "rejected by collect (its marker file is unreadable)"
    rejected_marker(nb).write_text('{"reason": "1,536 MB > 100 MB limit", "source": "x"}')
    assert rejected_reason(nb) == "1,536 MB > 100 MB limit"
    assert read_notebook(nb).error == "1,536 MB > 100 MB limit"


HOSTILE = {
    "deep": deep(),
    "deep_in_strings_is_fine_but_not_json": b'"' + b"[" * 100_000,
    "many_containers": b'{"cells": [' + b"{}," * 2_100_000 + b"{}]}",
    "many_values": b'{"cells": [], "x": [' + b"1," * 10_100_000 + b"1]}",
    "binary": bytes(range(256)) * 10,
    "bad_utf8": b'{"cells": [], "x": "\xff\xfe"}',
    "empty": b"",
    "list": b"[1, 2, 3]",
    "no_cells": b'{"metadata": {}}',
    "cells_not_list": b'{"cells": {}}',
    "bad_cell": b'{"cells": [{"cell_type": "evil", "source": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "huge_cell_type": b'{"cells": [{"cell_type": "' + b"x" * 100_000 + b'", "source": ""}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "lone_surrogate": b'{"cells": [{"cell_type": "code", "source": "\\ud800", "metadata": {}, "outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "nan": b'{"cells": [], "x": NaN, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "nbformat_99": b'{"cells": [], "metadata": {}, "nbformat": 99, "nbformat_minor": 0}',
    "nbformat_str": b'{"cells": [], "metadata": {}, "nbformat": "4", "nbformat_minor": "x"}',
    "big": padded(2 * MIB),
    "grade_id_list": json.dumps({**json.loads(FIXTURE.read_bytes()), "cells": [
        {**c, "metadata": {**c["metadata"], "nbgrader": {**c["metadata"]["nbgrader"], "grade_id": ["x"]}}}
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") else c
        for c in json.loads(FIXTURE.read_bytes())["cells"]]}).encode(),
}


@pytest.mark.filterwarnings("ignore:Cell is missing an id field")
def test_read_notebook_never_raises(tmp_path):
    for name, raw in HOSTILE.items():
        p = tmp_path / f"{name}.ipynb"
        p.write_bytes(raw)
        chk = read_notebook(p, max_mb=1)
        assert isinstance(chk.error, str), name
        if name not in ("lone_surrogate", "nan", "nbformat_str"):
            assert not chk.valid and chk.error, name
        assert len(chk.error) < 1000, name
    assert read_notebook(tmp_path / "big.ipynb", max_mb=1).error == "2 MB > 1 MB limit"
    assert "nested deeper" in read_notebook(tmp_path / "deep.ipynb").error
    assert "lists and objects" in read_notebook(tmp_path / "many_containers.ipynb", max_mb=100).error
    assert "values" in read_notebook(tmp_path / "many_values.ipynb", max_mb=100).error
    assert "grade_id is not a string" in read_notebook(tmp_path / "grade_id_list.ipynb").error
    from autograde.integrity import check_submission        # would raise on an unhashable id
    assert not check_submission(tmp_path / "grade_id_list.ipynb", FIXTURE).valid
    # not a file, a directory, a fifo (a plain open() would block), missing
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "dir.ipynb").mkdir()
    for p in ("fifo.ipynb", "dir.ipynb", "missing.ipynb"):
        chk = read_notebook(tmp_path / p)
        assert not chk.valid and "cannot read the file" in chk.error, p


def test_valid_notebooks_still_read(tmp_path):
    nb = json.loads(good())
    assert read_notebook(FIXTURE).valid
    # CRLF line ends in the JSON and in the cells' sources (Colab, Windows editors), a BOM
    crlf = json.dumps(nb, indent=1).replace("\n", "\r\n").replace("\\n", "\\r\\n")
    (tmp_path / "crlf.ipynb").write_bytes(crlf.encode())
    chk = read_notebook(tmp_path / "crlf.ipynb")
    assert chk.valid and "\r\n" in "".join(c.source for c in chk.nb.cells)
    (tmp_path / "bom.ipynb").write_bytes(b"\xef\xbb\xbf" + good())
    assert read_notebook(tmp_path / "bom.ipynb").valid
    # a notebook's real shape is far from the limits: depth 30 in an output, escapes, brackets in strings
    nest = json.loads("[" * 30 + "]" * 30)
    nb["cells"][0].setdefault("outputs", [])
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "display_data", "metadata": {},
                        "data": {"application/json": {"x": nest, "s": 'a\\"[{b}]\\\\'}}}]
    (tmp_path / "rich.ipynb").write_text(json.dumps(nb))
    assert read_notebook(tmp_path / "rich.ipynb").valid
    assert collect.json_shape_problem(json.dumps(nb).encode()) is None


def test_placed_notebook_keeps_a_lone_surrogate_escaped(course, tmp_path):
    nb = json.loads(good())
    nb["metadata"]["colab"] = {"provenance": [{"user": "Alice"}]}
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = "x = '\ud800'"
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(f"alice__{NB}.ipynb", json.dumps(nb))          # ensure_ascii: "\ud800" escaped
    assert run(course, z) == 0
    text = submitted(course, "alice").read_text()
    assert "Alice" not in text and "\\ud800" in text


def test_placed_notebook_stays_within_the_limit(course, tmp_path):
    """Stripping rewrites the notebook; where Jupyter's indentation would push it past the
    limit it is written compact, and a notebook with nothing to strip keeps its bytes."""
    nb = json.loads(good())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "display_data", "metadata": {},
                        "data": {"application/json": {"v": ["abcdefgh"] * 70_000}}}]
    plain = json.dumps(nb, separators=(",", ":")).encode()          # 0.8 MB compact, 1.4 MB indented
    nb["metadata"]["colab"] = {"provenance": [{"user": "Alice"}]}
    personal = json.dumps(nb, separators=(",", ":")).encode()
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr(f"alice__{NB}.ipynb", personal)
        f.writestr(f"bob__{NB}.ipynb", plain)
    assert run(course, z, max_notebook_mb=1) == 0
    a = submitted(course, "alice")
    assert a.stat().st_size <= MIB and b"Alice" not in a.read_bytes()
    assert read_notebook(a, max_mb=1).valid
    assert submitted(course, "bob").read_bytes() == plain
