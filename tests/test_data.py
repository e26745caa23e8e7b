import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from refine_utils import data


def test_digits_is_fixed_stratified_and_shaped(digits):
    assert digits.train.images.shape == (1297, 3, 32, 32) and digits.train.images.dtype == torch.uint8
    assert len(digits.test) == data.DIGITS_TEST
    counts = torch.bincount(digits.test.labels, minlength=10)
    assert counts.min() >= 45 and counts.max() <= 56  # every class in proportion
    again = data.load("digits")
    assert torch.equal(again.test.labels, digits.test.labels) and torch.equal(again.train.images, digits.train.images)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="cifar10.*digits|digits.*cifar10"):
        data.load("mnist")


def _write_npz(folder, name, n, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), labels=rng.integers(0, 10, n))


def test_cifar_from_npz_folder(tmp_path):
    _write_npz(tmp_path / "cifar10", "train.npz", 20, 0)
    _write_npz(tmp_path / "cifar10", "test.npz", 10, 1)
    ds = data.load("cifar10", tmp_path)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.num_classes == 10
    with np.load(tmp_path / "cifar10" / "train.npz") as f:  # HWC -> CHW without scrambling pixels
        assert torch.equal(ds.train.images[3].permute(1, 2, 0), torch.from_numpy(f["images"][3]))


def test_cifar10_10k_needs_its_files(tmp_path):
    with pytest.raises(data.DatasetMissing, match="train_10k.npz"):
        data.load("cifar10-10k", tmp_path)


def test_cifar10_10k_is_drawn_from_a_full_cifar10_by_the_subset_rule(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    labels = rng.permutation(np.repeat(np.arange(10), 7))
    images = rng.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "train.npz", images=images, labels=labels)
    _write_npz(tmp_path / "cifar10", "test.npz", 10, 1)
    monkeypatch.setattr(data, "SUBSET_PER_CLASS", 3)
    ds = data.load("cifar10-10k", tmp_path)
    # the rule, as the shared copy's README states it
    pick = np.random.default_rng(0)
    want = np.sort(np.concatenate([pick.choice(np.flatnonzero(labels == c), 3, replace=False) for c in range(10)]))
    assert torch.equal(ds.train.labels, torch.from_numpy(labels[want]))
    assert torch.equal(ds.train.images[5].permute(1, 2, 0), torch.from_numpy(images[want[5]]))
    assert torch.bincount(ds.train.labels).tolist() == [3] * 10 and len(ds.test) == 10
    assert data.source(ds.name) == "cifar10" and data.source("digits") == "digits"


def test_missing_cifar_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(data.DatasetMissing, match=str(tmp_path)) as e:
        data.load("cifar100", tmp_path, download=False)
    assert "REFINE_DATA_DIR" in str(e.value) and "--download" in str(e.value)


def _fake_cifar10_archive(path, n=8):
    """A tiny archive in the official CIFAR-10 python format, with its MD5s."""
    rng = np.random.default_rng(0)
    buf, md5s = io.BytesIO(), {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        for name in names:
            if name == "batches.meta":
                obj = {"label_names": [f"c{i}" for i in range(10)]}
            else:
                obj = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
            raw = pickle.dumps(obj)
            md5s[name] = hashlib.md5(raw).hexdigest()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    path.write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest(), md5s


@pytest.fixture
def loopback_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www`` (the download test's only network)."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_path_verifies_checksums(tmp_path, monkeypatch, loopback_server):
    from torchvision import datasets

    www, url = loopback_server
    archive = www / "cifar-10-python.tar.gz"
    tgz_md5, md5s = _fake_cifar10_archive(archive)
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "url", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(cls, "train_list", [[n, md5s[n]] for n in [f"data_batch_{i}" for i in range(1, 6)]])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5s["batches.meta"]})
    monkeypatch.setattr(cls, "tgz_md5", tgz_md5)
    root = tmp_path / "root"
    ds = data.load("cifar10", root, download=True)
    assert len(ds.train) == 40 and len(ds.test) == 8 and ds.train.images.dtype == torch.uint8
    # A tampered archive fails the checksum and is reported, not silently used.
    monkeypatch.setattr(cls, "tgz_md5", "0" * 32)
    with pytest.raises((data.DatasetMissing, RuntimeError)):
        data.load("cifar10", tmp_path / "other", download=True)


def test_augment_matches_pad_crop_flip_per_image():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    flips = torch.tensor([True, False, True, False, True, False])
    shifts = torch.randint(0, 9, (6, 2), generator=g)
    out = data.augment(images, flips, shifts)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for k in range(6):
        t, l = shifts[k].tolist()
        ref = padded[k, :, t:t + 32, l:l + 32]
        ref = ref.flip(2) if flips[k] else ref
        assert torch.equal(out[k], ref)


def test_loader_draws_depend_on_seed_and_epoch_only(digits):
    def first_batch(epoch, seed=0):
        loader = data.Loader(digits.train, digits.mean, digits.std, 64, train=True, seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))

    x0, y0 = first_batch(3)
    x1, y1 = first_batch(3)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert not torch.equal(first_batch(4)[0], x0) and not torch.equal(first_batch(3, seed=1)[0], x0)
    assert x0.is_contiguous() and x0.dtype == torch.float32


def test_eval_loader_is_ordered_and_complete(digits):
    loader = data.Loader(digits.test, digits.mean, digits.std, 128, train=False)
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, digits.test.labels) and len(loader) == 4


def test_shared_cifar_matches_published_checksums(shared_cifar_dir):
    expected = {
        "test.npz": ("f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
                     "cbb7365de8ed11f05cc4c3a1e7f78144127c5e851efd83762fb18202461230bb"),
        "train_10k.npz": ("39aa899981b306f921649b0b9ef1acca81ef78a9283d460d7d154d1a46b2ea2c",
                          "d3ac51195f36d50ee164f032405385fb0c490c0df744172913fbb842d68fd1c6"),
    }
    for name, (img_sha, lab_sha) in expected.items():
        with np.load(shared_cifar_dir / "cifar10" / name) as f:
            assert hashlib.sha256(f["images"].tobytes()).hexdigest() == img_sha
            assert hashlib.sha256(f["labels"].tobytes()).hexdigest() == lab_sha
    ds = data.load("cifar10-10k", shared_cifar_dir)
    assert len(ds.train) == 10_000 and len(ds.test) == 10_000


def test_every_dataset_has_a_caption_label_and_a_source():
    assert set(data.LABELS) == set(data.DATASETS)
    assert data.source("cifar10-10k") == "cifar10" and data.source("digits") == "digits"


def _arrays(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def _bad_files():
    """(what is wrong, how to write ``path``, what the message must say)."""
    images, labels = _arrays()
    return {
        "lengths differ": (lambda p: np.savez(p, images=images, labels=labels[:10]), "12 images but 10 labels"),
        "float labels": (lambda p: np.savez(p, images=images, labels=labels.astype(np.float32)), "'labels' must be integers"),
        "negative label": (lambda p: np.savez(p, images=images, labels=np.r_[labels[:-1], -100]), "0..9, got -100"),
        "label out of range": (lambda p: np.savez(p, images=images, labels=np.r_[labels[:-1], 10]), "0..9"),
        "empty": (lambda p: np.savez(p, images=images[:0], labels=labels[:0]), "no examples"),
        "missing key": (lambda p: np.savez(p, pictures=images, labels=labels), "no 'images' array"),
        "CHW images": (lambda p: np.savez(p, images=images.transpose(0, 3, 1, 2), labels=labels), "(N, 32, 32, 3)"),
        "float images": (lambda p: np.savez(p, images=images.astype(np.float32), labels=labels), "uint8"),
        "corrupt zip": (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(100)), "not a readable .npz"),
        "truncated zip": (lambda p: (np.savez(p, images=images, labels=labels),
                                     p.write_bytes(p.read_bytes()[:2000])), "not a readable .npz"),
        "garbage": (lambda p: p.write_bytes(b"hello"), "not a readable .npz"),
        "one array": (lambda p: np.save(open(p, "wb"), images), "single array"),
    }


BAD_FILES = _bad_files()


@pytest.mark.parametrize("what", BAD_FILES)
def test_bad_data_files_are_refused_naming_the_file(tmp_path, what):
    write, message = BAD_FILES[what]
    folder = tmp_path / "cifar10"
    _write_npz(folder, "train.npz", 12, 0)
    _write_npz(folder, "test.npz", 12, 1)
    write(folder / "train.npz")
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", tmp_path)
    assert str(folder / "train.npz") in str(e.value) and message in str(e.value)


def test_cifar10_10k_from_too_small_a_cifar10_says_so(tmp_path):
    _write_npz(tmp_path / "cifar10", "train.npz", 50, 0)
    _write_npz(tmp_path / "cifar10", "test.npz", 10, 1)
    with pytest.raises(data.DataError, match=r"1000 training images per class.*5000 per class"):
        data.load("cifar10-10k", tmp_path)


def test_valid_cifar100_labels_up_to_99_load(tmp_path):
    folder = tmp_path / "cifar100"
    folder.mkdir()
    images, _ = _arrays()
    np.savez(folder / "train.npz", images=images, labels=np.arange(88, 100, dtype=np.uint8))
    np.savez(folder / "test.npz", images=images, labels=np.zeros(12, dtype=np.int32))
    ds = data.load("cifar100", tmp_path)
    assert ds.train.labels.dtype == torch.int64 and ds.train.labels.max() == 99 and ds.num_classes == 100


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # a closed port: no network
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    with pytest.raises(data.DatasetMissing, match="no network") as e:
        data.load("cifar10", tmp_path, download=True)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
