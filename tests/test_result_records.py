"""The results cache: records sealed with a checksum, verified on every read, written atomically;
a missing result during the book build is an error naming the command that computes it."""
import json
import os

import pytest

from refine_utils import specs, store

ROOT = store.ROOT


@pytest.fixture
def tmp_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("REFINE_MISSING_RESULTS", raising=False)
    return tmp_path


def spec(**kw) -> specs.RunSpec:
    return specs.RunSpec(**dict(dict(arch="resnet32", dataset="digits", width=0.125, epochs=1), **kw))


def stored(tmp_caches):
    record = store.result("smoke", "thing", spec(), lambda: {"x": 0.25})
    return store.result_path("smoke", "thing", spec()), record


def test_a_record_is_sealed_and_read_back_verified(tmp_caches):
    path, record = stored(tmp_caches)
    assert record["checksum"] == store.record_checksum(record) and record["value"] == {"x": 0.25}
    assert store.read_result(path) == record
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("damage, message", [
    (lambda t: "", "corrupt or empty"),
    (lambda t: t[: len(t) // 2], "corrupt or empty"),
    (lambda t: t.replace('"x": 0.25', '"x": 0.487'), "fails its checksum"),
    (lambda t: t.replace('"checksum"', '"chdcksum"'), "no checksum"),
    (lambda t: "[1, 2]", "not a refine_utils result"),
])
def test_a_damaged_record_is_an_error_naming_the_file(tmp_caches, damage, message):
    path, _ = stored(tmp_caches)
    path.write_text(damage(path.read_text()))
    with pytest.raises(store.ResultError, match=message) as e:
        store.result("smoke", "thing", spec(), lambda: pytest.fail("recomputed over a damaged record"))
    assert str(path) in str(e.value) and "make results PROFILE=smoke" in str(e.value)


def test_a_record_from_before_checksums_is_read_and_can_be_sealed(tmp_caches):
    path, record = stored(tmp_caches)
    legacy = {k: v for k, v in record.items() if k != "checksum"}
    path.write_text(json.dumps(legacy, indent=1, sort_keys=True) + "\n")
    assert store.read_result(path) == legacy
    assert store.seal_results(tmp_caches / "results") == [path]
    assert store.read_result(path) == record and store.seal_results(tmp_caches / "results") == []


def test_missing_result_is_an_error_when_the_book_build_asks(tmp_caches, monkeypatch):
    monkeypatch.setenv("REFINE_MISSING_RESULTS", "error")
    with pytest.raises(store.MissingResult) as e:
        store.result("smoke", "thing", spec(), lambda: pytest.fail("computed during the book build"))
    assert str(store.result_path("smoke", "thing", spec())) in str(e.value)
    assert "make results PROFILE=smoke" in str(e.value)
    monkeypatch.setenv("REFINE_MISSING_RESULTS", "sometimes")
    with pytest.raises(ValueError, match="compute, error"):
        store.result("smoke", "thing", spec(), lambda: 1)


def test_a_full_disk_leaves_no_temporary_and_says_so(tmp_caches, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = store.result_path("smoke", "thing", spec())
    with pytest.raises(OSError, match=f"disk full: cannot write result {path}"):
        store.result("smoke", "thing", spec(), lambda: 1)
    assert list(path.parent.iterdir()) == []


def test_every_committed_record_carries_a_valid_checksum():
    files = sorted((ROOT / "results").rglob("*.json"))
    assert files
    unsealed = [str(p.relative_to(ROOT)) for p in files if "checksum" not in store.read_result(p)]
    assert not unsealed, f"seal them with store.seal_results: {unsealed[:3]}"
