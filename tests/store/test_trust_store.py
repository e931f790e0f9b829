"""Issue 20, run directories and checkpoints: a leftover is ours only by its own marker,
paths read from our files stay inside, damaged checkpoints and file-system edges are
one line, and no refusal creates anything."""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ctrl_c_in_train
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condensation.errors import InputError
from condensation.store import rundir as store
from condensation.store.checkpoint import Checkpoint, checkpoint_dir

TINY = ["model.widths=[4, 4]", "train.steps=60", "train.snapshots=4", "train.linear_snapshots=3"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def _write_run(out, files=("summary.json",), **kw):
    with store.run_directory(out, **kw) as tmp:
        for f in files:
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp / f).write_text("{}")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) with a hash of what it is."""
    out = {}
    for p in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
        rel = p.relative_to(root.parent).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _snapshot(paths) -> dict[str, str]:
    snap = {}
    for p in paths:
        snap.update(_tree(p) if os.path.lexists(p) else {str(p): "missing"})
    return snap


# a tiny trainer state for the checkpoint (no compile needed)
CARRY = {"w": np.arange(3.0), "n": np.int32(7)}


def _saved_checkpoint(d: Path, key="k") -> Checkpoint:
    ck = Checkpoint(d, key)
    ck.save(1, CARRY, {"loss": [np.float64(1.0), np.float64(0.5)]}, force=True)
    return ck


def _resume(d: Path, key="k"):
    records = {"loss": []}
    return Checkpoint(d, key, resume=True).restore(CARRY, records), records


# ---- 1. ownership by marker, never by name -----------------------------------------------
def test_issue_example_train_leaves_the_users_lookalikes_alone(tmp_path, cli_main, monkeypatch):
    """``train --out results`` beside the user's ``.results.old-N/``,
    ``.results.partial-N-final/`` and ``.results.checkpoint/records-draft.txt``
    (N a dead pid): all three survive unchanged, and the run succeeds."""
    monkeypatch.chdir(tmp_path)
    dead = _dead_pid()
    mine = [tmp_path / f".results.old-{dead}", tmp_path / f".results.partial-{dead}-final"]
    for d in mine:
        d.mkdir()
        (d / "thesis.tex").write_text("precious")
    (tmp_path / ".results.checkpoint").mkdir()
    (tmp_path / ".results.checkpoint" / "records-draft.txt").write_text("draft")
    mine.append(tmp_path / ".results.checkpoint")
    before = _snapshot(mine)
    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")
    code, err = cli_main("train", *_sets(TINY), "--out", "results")
    assert code == 0, err
    assert _snapshot(mine) == before
    assert store.is_run_dir(tmp_path / "results")
    notes = [ln for ln in err.splitlines() if ln.startswith("note:")]
    assert any("left alone" in ln and f".results.old-{dead}" in ln for ln in notes), err
    assert len([ln for ln in notes if f".results.old-{dead}" in ln]) == 1, err  # said once
    assert not any("removed" in ln for ln in notes), err


def test_a_users_file_of_the_lock_name_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "run"
    lock = store.lock_path(out)
    lock.write_text("my notes about the lock-in effect")
    with pytest.raises(InputError, match="lock") as e:
        _write_run(out)
    assert "\n" not in str(e.value)
    assert lock.read_text() == "my notes about the lock-in effect"
    assert sorted(p.name for p in tmp_path.iterdir()) == [lock.name]


def test_checkpoint_discard_deletes_only_what_its_meta_lists(tmp_path):
    d = tmp_path / ".run.checkpoint"
    ck = _saved_checkpoint(d)
    assert ck.exists
    (d / "notes.txt").write_text("mine")
    (d / "records-draft.txt").write_text("draft")
    Checkpoint(d, "k2")  # a new run, not resuming: the earlier checkpoint is discarded
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "records-draft.txt"]
    assert (d / "notes.txt").read_text() == "mine"
    ck = Checkpoint(d, "k2")  # the folder is not ours now: this run keeps no checkpoint
    ck.save(1, CARRY, {"loss": [np.float64(1.0), np.float64(0.5)]}, force=True)
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "records-draft.txt"]
    assert not ck.exists


def test_a_checkpoint_folder_without_our_marker_is_never_deleted(tmp_path):
    d = tmp_path / ".run.checkpoint"  # looks like one of ours from an older version
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"tool": "condensation", "key": "k", "chunks": []}))
    (d / "carry-3.npz").write_bytes(b"user bytes")
    before = _snapshot([d])
    Checkpoint(d, "k")
    assert _snapshot([d]) == before
    with pytest.raises(InputError, match="rerun without --resume"):
        _resume(d)
    assert _snapshot([d]) == before


def test_partial_of_a_reused_pid_is_removed_of_a_live_run_kept(tmp_path):
    out = tmp_path / "run"
    code = (
        "import sys, time; from condensation.store import rundir as store; "
        "print(store.new_partial(sys.argv[1]), flush=True); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE)
    with child.stdout:
        live = Path(child.stdout.readline().decode().strip())
    try:
        reused = store.new_partial(out)  # its pid is alive now, but another process has it
        m = store.read_marker(reused)
        m["owner"].update(pid=child.pid, start="1")
        (reused / store.MARKER).write_text(json.dumps(m))
        forged = store.hidden_sibling(out, "partial", store.new_token())  # token != name
        forged.mkdir()
        (forged / store.MARKER).write_text(json.dumps(m))
        removed = store.clean_stale(out)
        assert removed == [reused] and live.is_dir() and forged.is_dir()
    finally:
        child.kill()
        child.wait()
    assert store.clean_stale(out) == [live]  # its process is gone now
    assert forged.is_dir()


def _killed_put_in_place(monkeypatch, src, out, at):
    """``put_in_place`` killed right after the rename that moves ``at`` (os.replace) or
    before the moved-aside run is removed (``at='rmtree'``)."""
    real_replace = os.replace

    def replace(a, b):
        real_replace(a, b)
        if Path(a) == at:
            raise SystemExit("killed")

    def rmtree(*args, **kw):
        raise SystemExit("killed")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        if at == "rmtree":
            m.setattr(store.shutil, "rmtree", rmtree)
        with pytest.raises(SystemExit):
            store.put_in_place(src, out)


def _as_killed(d: Path, dead: int) -> None:
    """The owner records in ``d``'s marker now name a dead process."""
    m = store.read_marker(d)
    for rec in (m.get("owner"), m.get("replaces", {}).get("owner")):
        if rec:
            rec["pid"] = dead
    (d / store.MARKER).write_text(json.dumps(m))


def test_a_replacement_killed_between_its_steps_is_finished_with_proof(tmp_path, monkeypatch):
    out, dead = tmp_path / "run", _dead_pid()
    _write_run(out, files=("first.txt",))
    # killed after the earlier run was moved aside: it is put back
    src = store.new_partial(out)
    store.write_marker(src)
    _killed_put_in_place(monkeypatch, src, out, at=out)
    assert not out.exists()
    _as_killed(src, dead)
    store.clean_stale(out)
    assert store.read_marker(out)["files"] == ["first.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # killed after the new run was in place: the moved-aside run is removed
    src = store.new_partial(out)
    (src / "second.txt").write_text("2")
    store.write_marker(src)
    _killed_put_in_place(monkeypatch, src, out, at="rmtree")
    old = [p for p in tmp_path.iterdir() if p.name != "run"]
    assert len(old) == 1 and old[0].name.startswith(".run.old-")
    _as_killed(out, dead)
    user = tmp_path / f".run.old-{store.new_token()}"  # a look-alike: no proof, left alone
    user.mkdir()
    store.clean_stale(out)
    assert not old[0].exists() and user.is_dir()
    assert store.read_marker(out)["files"] == ["second.txt"]


# ---- 2. paths read from our files stay inside --------------------------------------------
@pytest.mark.parametrize("where", ["carry-up", "carry-absolute", "chunk-up"])
def test_checkpoint_naming_a_file_outside_is_refused(tmp_path, where):
    d = tmp_path / "work" / ".run.checkpoint"
    d.parent.mkdir()
    _saved_checkpoint(d)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.npz"
    np.savez(victim, leaf0=np.int32(7), leaf1=np.arange(3.0))  # a carry that fits
    meta = json.loads((d / "meta.json").read_text())
    if where == "carry-up":
        meta["carry"] = "../../outside/victim.npz"
    elif where == "carry-absolute":
        meta["carry"] = str(victim)
    else:
        np.savez(victim, **{"loss:0": 1.0, "loss:1": 0.5})
        meta["chunks"][0]["file"] = "../../outside/victim.npz"
    (d / "meta.json").write_text(json.dumps(meta))
    before = _snapshot([outside])
    with pytest.raises(InputError, match="rerun without --resume") as e:
        _resume(d)
    assert "\n" not in str(e.value) and str(d) in str(e.value)
    Checkpoint(d, "k").discard()
    Checkpoint(d, "k")  # rerun without --resume: the checkpoint goes, the victim stays
    assert _snapshot([outside]) == before
    # the files of the checkpoint carry its token: its former carry / chunk goes too
    assert not d.exists()


def test_cli_resume_of_a_tampered_checkpoint_is_one_line(tmp_path, cli_main, monkeypatch):
    """Ctrl-C keeps the checkpoint; its carry redirected outside: ``--resume`` is one
    line (exit 2, the fix), the outside file neither read into the run nor deleted."""
    monkeypatch.setenv("CONDENSATION_CHECKPOINT_EVERY", "0")
    out = tmp_path / "run"

    with ctrl_c_in_train(at_step=20):
        code, err = cli_main("train", *_sets(TINY), "--out", str(out))
    assert code == 130, err
    d = checkpoint_dir(out)
    meta = json.loads((d / "meta.json").read_text())
    victim = tmp_path / "victim.npz"
    os.replace(d / meta["carry"], victim)
    meta["carry"] = "../victim.npz"
    (d / "meta.json").write_text(json.dumps(meta))
    before = _snapshot([victim])
    code, err = cli_main("train", *_sets(TINY), "--out", str(out), "--resume")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "rerun without --resume" in lines[0], err
    assert _snapshot([victim]) == before and not out.exists()
    assert (d / "meta.json").exists()  # the refused checkpoint is left as it was


# ---- 3. damaged checkpoints ----------------------------------------------------------------
def _damage(d: Path, how: str) -> None:
    meta = json.loads((d / "meta.json").read_text())
    carry, chunk = d / meta["carry"], d / meta["chunks"][0]["file"]
    if how == "carry-truncated":
        carry.write_bytes(carry.read_bytes()[: carry.stat().st_size // 2])
    elif how == "carry-bitflip":
        raw = bytearray(carry.read_bytes())
        at = raw.index(b"\x00\x00\x00\x00\x00\x00\xf0?")  # 1.0 in leaf0's data
        raw[at + 7] ^= 0x01
        carry.write_bytes(bytes(raw))
    elif how == "carry-empty":
        carry.write_bytes(b"")
    elif how == "chunk-truncated":
        chunk.write_bytes(chunk.read_bytes()[:40])
    elif how == "chunk-zlib":
        np.savez_compressed(chunk, **{"loss:0": np.ones(100), "loss:1": np.ones(100)})
        raw = bytearray(chunk.read_bytes())
        raw[60:70] = b"\xff" * 10
        chunk.write_bytes(bytes(raw))
    elif how == "meta-not-json":
        (d / "meta.json").write_text("{not json")
    else:
        field, value = {
            "meta-index": ("index", "x"),
            "meta-chunks": ("chunks", "abc"),
            "meta-carry": ("carry", 3),
            "meta-treedef": ("treedef", None),
        }[how]
        meta[field] = value
        (d / "meta.json").write_text(json.dumps(meta))


DAMAGE = [
    "carry-truncated",
    "carry-bitflip",
    "carry-empty",
    "chunk-truncated",
    "chunk-zlib",
    "meta-not-json",
    "meta-index",
    "meta-chunks",
    "meta-carry",
    "meta-treedef",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_checkpoint_is_one_line_with_the_fix(tmp_path, how):
    d = tmp_path / ".run.checkpoint"
    _saved_checkpoint(d)
    _damage(d, how)
    with pytest.raises(InputError, match="rerun without --resume") as e:
        _resume(d)
    assert "\n" not in str(e.value) and str(d) in str(e.value)


def test_an_intact_checkpoint_resumes(tmp_path):
    d = tmp_path / ".run.checkpoint"
    _saved_checkpoint(d)
    (first, carry), records = _resume(d)
    assert first == 1 and [float(x) for x in records["loss"]] == [1.0, 0.5]
    np.testing.assert_array_equal(carry["w"], CARRY["w"])


# ---- 4. file-system edges ------------------------------------------------------------------
def test_a_240_character_out_name_works_and_its_siblings_fit(tmp_path):
    for name in ("r" * 240, "é" * 127, "x" * 255):
        out = tmp_path / name
        for kind, token in (("partial", store.new_token()), ("old", "0" * 16), ("lock", None)):
            sib = store.hidden_sibling(out, kind, token)
            assert len(os.fsencode(sib.name)) <= 255 and sib.name.startswith(".")
            sib.name.encode("utf-8")  # cut on a whole character
        assert len(os.fsencode(checkpoint_dir(out).name)) <= 255
        _write_run(out)
        _write_run(out, files=("second.json",), overwrite=True)  # (moved aside, removed)
        ck = _saved_checkpoint(checkpoint_dir(out))
        ck.discard()
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]
        assert store.read_marker(out)["files"] == ["second.json"]
        shutil.rmtree(out)
    assert store.hidden_sibling(tmp_path / ("r" * 240), "lock") != store.hidden_sibling(
        tmp_path / ("r" * 239 + "s"), "lock"
    )  # the hash keeps long names apart


def test_names_and_paths_too_long_are_refused_creating_nothing(tmp_path):
    for out in (tmp_path / ("n" * 256), tmp_path / "a" / ("n" * 256) / "run"):
        with pytest.raises(InputError, match="255") as e:
            _write_run(out)
        assert "\n" not in str(e.value)
    deep = tmp_path.joinpath(*(["d" * 250] * 20), "run")
    with pytest.raises(InputError, match="4096"):
        _write_run(deep)
    assert list(tmp_path.iterdir()) == []


def test_free_space_refusal_creates_no_parents(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(InputError, match="MB free"):
        with store.reserve(out, need_bytes=1e18):
            pass
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(InputError, match="disk filled up") as e:
        with store.run_directory(out) as tmp:
            (tmp / "summary.json").write_text("{}")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "arrays.npz"))
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nor the parent this run made


def test_disk_full_while_checkpointing_leaves_nothing(tmp_path, monkeypatch):
    from condensation.cli._common import guarded_run
    from condensation.store import checkpoint

    real = np.savez

    def savez_then_full(f, **arrays):
        real(f, **arrays)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.np, "savez", savez_then_full)
    out = tmp_path / "run"
    with pytest.raises(InputError, match="disk filled up"):
        with guarded_run(out, "k", overwrite=False, resume=False, need_bytes=0) as ck:
            ck.save(1, CARRY, {"loss": [np.float64(1.0), np.float64(0.5)]}, force=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_out_in_a_folder_that_cannot_be_written(tmp_path, monkeypatch, code):
    """Simulated (tests run as root): making a directory in the parent fails."""
    real_mkdir = os.mkdir

    def mkdir(path, *a, **kw):
        if Path(path).parent == tmp_path:
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    for out in (tmp_path / "run", tmp_path / "sub" / "run"):
        with pytest.raises(InputError, match="cannot be written") as e:
            _write_run(out)
        assert "\n" not in str(e.value)
        assert list(tmp_path.iterdir()) == []


def test_a_read_only_parent_is_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **kw: False)
    with pytest.raises(InputError, match="cannot be written"):
        _write_run(tmp_path / "a" / "run")
    assert list(tmp_path.iterdir()) == []


def test_failed_parent_creation_removes_only_what_it_made(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep.txt").write_text("x")
    real_mkdir = os.mkdir

    def mkdir(path, *a, **kw):
        if Path(path).name == "c" and Path(path).parent.is_dir():
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(InputError, match="cannot be written"):
        _write_run(tmp_path / "a" / "b" / "c" / "run")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["keep.txt"]


# ---- 5. property: nothing foreign is ever changed -----------------------------------------
_SUFFIX = st.one_of(
    st.just(""),
    st.text("0123456789abcdef", min_size=1, max_size=18),
    st.text("abcXYZ_-.0123456789", min_size=1, max_size=10),
    st.sampled_from(["DEAD", "LIVE", "SELF", "DEAD-final", "2023", "1999-final"]),
)
_ENTRY = st.tuples(
    st.sampled_from(["partial", "old", "lock", "checkpoint", "resume", "partial-", "old-"]),
    st.sampled_from(["-", ".", "", "~"]),
    _SUFFIX,
    st.sampled_from(["file", "dir", "empty-dir"]),
)
_INNER = st.lists(
    st.tuples(
        st.sampled_from(["records-", "carry-", "meta.json", ".condensation-checkpoint", "x-"]),
        st.text("0123456789-.npz", max_size=8),
        st.sampled_from(["{}", "garbage", '{"tool": "condensation", "key": "k"}']),
    ),
    max_size=3,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(_ENTRY, max_size=5),
    inner=_INNER,
    ours_first=st.booleans(),
    op=st.sampled_from(["run", "overwrite", "checkpoint", "resume"]),
)
def test_no_operation_changes_a_file_it_did_not_create(tmp_path, entries, inner, ours_first, op):
    import tempfile

    dead, live = str(_dead_pid()), str(os.getppid())
    with tempfile.TemporaryDirectory(dir=tmp_path) as root:
        root = Path(root)
        out = root / "res"
        if ours_first:  # an earlier run and a checkpoint of ours, with foreign files beside
            _write_run(out)
            _saved_checkpoint(checkpoint_dir(out))
        foreign = []
        for kind, sep, suffix, what in entries:
            suffix = suffix.replace("DEAD", dead).replace("LIVE", live)
            suffix = suffix.replace("SELF", str(os.getpid()))
            p = root / f".res.{kind}{sep}{suffix}"
            if os.path.lexists(p) or p.name == checkpoint_dir(out).name and ours_first:
                continue
            if what == "file":
                p.write_text(f"user {kind}")
            else:
                p.mkdir()
                if what == "dir":
                    (p / "thesis.tex").write_text("precious")
            foreign.append(p)
        ck_dir = checkpoint_dir(out)
        for prefix, mid, text in inner:
            if ck_dir.exists() and not ck_dir.is_dir():
                break
            ck_dir.mkdir(exist_ok=True)
            p = ck_dir / f"{prefix}{mid}"
            if os.path.lexists(p) or p.name in ("meta.json", ".condensation-checkpoint", ""):
                continue  # (our own files there are ours to replace)
            p.write_text(text)
            foreign.append(p)
        before = _snapshot(foreign)
        try:
            if op in ("run", "overwrite"):
                _write_run(out, overwrite=op == "overwrite")
            elif op == "checkpoint":
                with store.reserve(out, overwrite=True):
                    ck = Checkpoint(checkpoint_dir(out), "k")
                    ck.save(1, CARRY, {"loss": [np.float64(1.0), np.float64(0.5)]}, force=True)
                    ck.discard()
            else:
                with store.reserve(out, overwrite=True):
                    _resume(checkpoint_dir(out))
        except InputError as e:  # a refusal is fine; it is one line
            assert "\n" not in str(e)
        assert _snapshot(foreign) == before
