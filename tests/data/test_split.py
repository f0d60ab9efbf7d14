import numpy as np
import pytest

from mpnn.data.split import load_or_create_permutation, make_split


def test_full_split_sizes_and_disjointness():
    split = make_split(np.random.default_rng(0).permutation(130_831))
    assert (len(split.train), len(split.val), len(split.test)) == (110_831, 10_000, 10_000)
    assert len(set(split.train) | set(split.val) | set(split.test)) == 130_831


def test_subset_split_is_proportionate_and_nested():
    permutation = np.random.default_rng(0).permutation(130_831)
    small, large = make_split(permutation, 2000), make_split(permutation, 4000)
    assert (len(small.val), len(small.test), len(small.train)) == (153, 153, 1694)
    assert set(small.val) | set(small.test) | set(small.train) <= set(large.val) | set(large.test) | set(large.train)
    with pytest.raises(ValueError, match="data.subset=5 is out of range"):
        make_split(permutation, 5)


def test_train_size_shrinks_training_only_and_nests():
    permutation = np.random.default_rng(0).permutation(130_831)
    full, small, large = (
        make_split(permutation),
        make_split(permutation, train_size=11_000),
        make_split(permutation, train_size=35_000),
    )
    for split in (small, large):
        np.testing.assert_array_equal(split.val, full.val)
        np.testing.assert_array_equal(split.test, full.test)
    assert (len(small.train), len(large.train)) == (11_000, 35_000)
    assert set(small.train) < set(large.train) < set(full.train)
    with pytest.raises(ValueError, match=r"data.train_size=110832 is out of range; use 1..110831"):
        make_split(permutation, train_size=110_832)
    with pytest.raises(ValueError, match=r"use 1..1694 \(the training split\)"):
        make_split(permutation, subset=2000, train_size=2000)


def test_permutation_is_saved_and_reused(tmp_path):
    path = tmp_path / "split.npy"
    first = load_or_create_permutation(path, 1000, seed=1)
    again = load_or_create_permutation(path, 1000, seed=99)  # the saved file wins over the seed
    np.testing.assert_array_equal(first, again)
    with pytest.raises(RuntimeError, match="does not match the dataset"):
        load_or_create_permutation(path, 999, seed=1)


def _malformed(path, kind: str) -> None:
    good = np.random.default_rng(0).permutation(1000)
    if kind == "not a .npy file":
        path.write_text("train: 0..799\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "an .npz archive":
        with open(path, "wb") as file:
            np.savez(file, permutation=good)
    elif kind == "float values":
        np.save(path, good.astype(np.float64))
    elif kind == "wrong shape":
        np.save(path, good.reshape(1000, 1))
    elif kind == "repeated indices":
        np.save(path, np.zeros(1000, dtype=np.int64))


@pytest.mark.parametrize(
    "kind",
    ["not a .npy file", "empty", "truncated", "an .npz archive", "float values", "wrong shape", "repeated indices"],
)
def test_a_malformed_split_file_is_named_with_what_to_do_and_kept(tmp_path, kind):
    path = tmp_path / "qm9_split_seed0.npy"
    _malformed(path, kind)
    content = path.read_bytes()
    with pytest.raises(RuntimeError) as error:
        load_or_create_permutation(path, 1000, seed=0)
    message = str(error.value)
    assert message.startswith(f"split file {path} ") and message.endswith("move it away to create a new split")
    assert path.read_bytes() == content  # never replaced: runs that used it must stay comparable
