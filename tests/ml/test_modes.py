"""Acceptance 3: stream and memory modes see the same samples per epoch; a mid-epoch state resumes exactly.
Also: auto mode says what it chose, epochs reshuffle deterministically, DataLoader workers shard."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
import xarray as xr

from perc_platform.errors import ParameterError
from perc_platform.ml import ParticleDataset, ParticleLoader, choose_mode
from perc_platform.ml import transforms as T

BUFFER = 2 * 16 * 64 * 64 * 4  # two 16-particle chunks of the tilt stack


def order(loader: ParticleLoader) -> list[list[int]]:
    return [b["index"].tolist() for b in loader]


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def test_stream_and_memory_give_the_same_samples_each_epoch(sta: xr.DataArray) -> None:
    stream = ParticleLoader(sta, 32, "stream", device="cpu", seed=7, buffer_bytes=BUFFER)
    memory = ParticleLoader(sta, 32, "memory", device="cpu", seed=7)
    for _epoch in range(2):
        s, m = flat(order(stream)), flat(order(memory))
        assert sorted(s) == sorted(m) == list(range(219))
    assert stream.epoch == memory.epoch == 2


def test_epochs_reshuffle_and_repeat_with_the_seed(sta: xr.DataArray) -> None:
    for mode in ("stream", "memory"):
        a = ParticleLoader(sta, 32, mode, device="cpu", seed=11, buffer_bytes=BUFFER)
        b = ParticleLoader(sta, 32, mode, device="cpu", seed=11, buffer_bytes=BUFFER)
        e0, e1 = order(a), order(a)
        assert e0 != e1
        assert order(b) == e0 and order(b) == e1
        c = ParticleLoader(sta, 32, mode, device="cpu", seed=12, buffer_bytes=BUFFER)
        assert order(c) != e0
        a.set_epoch(1)
        assert order(a) == e1


def test_stream_shuffles_chunk_order_and_within_buffers(sta: xr.DataArray) -> None:
    loader = ParticleLoader(sta, 219, "stream", device="cpu", seed=2, buffer_bytes=BUFFER)
    (seen,) = order(loader)
    buffers = loader.batches.plan(0, 1)  # type: ignore[attr-defined]
    blocks = [seg.block for buf in buffers for seg in buf.segments]
    assert sorted(blocks) == list(range(14)) and blocks != sorted(blocks)  # chunk order shuffled
    for buf in buffers:
        assert len(buf.segments) <= 2  # a buffer holds up to two 16-particle chunks
        rows = np.concatenate([seg.particles for seg in buf.segments])
        window = seen[buf.start: buf.stop]
        assert sorted(window) == sorted(rows.tolist())  # the buffer's samples, together...
        if len(window) > 2:
            assert window != rows.tolist()  # ...and shuffled among themselves
    plain = ParticleLoader(sta, 219, "stream", device="cpu", shuffle=False)
    assert order(plain) == [list(range(219))]


@pytest.mark.parametrize("mode", ["stream", "memory"])
@pytest.mark.parametrize("stop", [1, 4])
def test_resume_mid_epoch_gives_the_rest_exactly(sta: xr.DataArray, mode: str, stop: int) -> None:
    kwargs = dict(device="cpu", seed=5, buffer_bytes=BUFFER, transforms=[T.RandomFlip(), T.Standardize()])
    full = ParticleLoader(sta, 20, mode, **kwargs)  # type: ignore[arg-type]
    order(full)  # epoch 0
    want = [(b["index"].tolist(), b["image"].clone()) for b in full]  # epoch 1

    first = ParticleLoader(sta, 20, mode, **kwargs)  # type: ignore[arg-type]
    order(first)
    it = iter(first)
    head = [next(it)["index"].tolist() for _ in range(stop)]
    state = first.state_dict()
    assert state["epoch"] == 1 and state["consumed"] == {0: stop}

    resumed = ParticleLoader(sta, 20, mode, **kwargs)  # type: ignore[arg-type]
    resumed.load_state_dict(state)
    rest = [(b["index"].tolist(), b["image"]) for b in resumed]
    assert head + [r[0] for r in rest] == [w[0] for w in want]
    for (_, got), (_, expected) in zip(rest, want[stop:], strict=True):
        torch.testing.assert_close(got, expected)  # random transforms repeat too
    assert resumed.epoch == 2 and resumed.state_dict()["consumed"] == {}


def test_resume_refuses_a_different_loader(sta: xr.DataArray) -> None:
    state = ParticleLoader(sta, 20, "memory", device="cpu", seed=5).state_dict()
    with pytest.raises(ParameterError, match="batch_size"):
        ParticleLoader(sta, 21, "memory", device="cpu", seed=5).load_state_dict(state)


@pytest.mark.parametrize("mode,stop,size,n", [("stream", 5, 16, 219), ("memory", 13, 16, 219),
                                               ("stream", 7, 25, 201), ("memory", 8, 25, 201)])
def test_dataloader_workers_shard_and_resume(sta: xr.DataArray, mode: str, stop: int, size: int, n: int) -> None:
    # With 201 particles and batches of 25 the two workers hold 4 and 5 batches: the round robin ends unevenly.
    kwargs = dict(device="cpu", seed=9, buffer_bytes=BUFFER, num_workers=2, split=np.arange(n))
    loader = ParticleLoader(sta, size, mode, **kwargs)  # type: ignore[arg-type]
    batches = order(loader)
    assert sorted(flat(batches)) == list(range(n)) and len(batches) == len(loader)
    assert batches == order(ParticleLoader(sta, size, mode, **kwargs))  # type: ignore[arg-type]

    again = ParticleLoader(sta, size, mode, **kwargs)  # type: ignore[arg-type]
    it = iter(again)
    head = [next(it)["index"].tolist() for _ in range(stop)]
    state = again.state_dict()
    del it
    resumed = ParticleLoader(sta, size, mode, **kwargs)  # type: ignore[arg-type]
    resumed.load_state_dict(state)
    assert head + order(resumed) == batches  # the rest of the epoch, in the original order


def test_drop_last_and_splits(sta: xr.DataArray) -> None:
    loader = ParticleLoader(sta, 50, "stream", device="cpu", drop_last=True, split=np.arange(0, 219, 2))
    batches = order(loader)
    assert [len(b) for b in batches] == [50, 50] and len(loader) == 2
    assert set(flat(batches)) <= set(range(0, 219, 2))


def test_auto_mode_says_which_it_chose(sta: xr.DataArray, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="perc_platform.ml"):
        loader = ParticleLoader(sta, 32, "auto", device="cpu")
    assert loader.mode == "memory" and "chose 'memory'" in loader.mode_reason
    assert "chose 'memory'" in caplog.text
    assert choose_mode(10 * 2**30, available=4 * 2**30)[0] == "stream"
    assert choose_mode(1 * 2**30, available=4 * 2**30)[0] == "memory"
    assert "2.00 GiB" in choose_mode(2 * 2**30, 0.5, available=2 * 2**30)[1]


def test_in_memory_and_plain_dask_arrays(sta: xr.DataArray) -> None:
    eager = sta.load()
    derived = sta * 1.0  # a dask array that is no longer a plain MRC read
    for images in (eager, derived):
        for mode in ("stream", "memory"):
            loader = ParticleLoader(images, 64, mode, device="cpu", seed=1)
            for b in loader:
                np.testing.assert_array_equal(b["image"].numpy(), eager.values[b["index"].numpy()])


def test_memory_mode_gathering_on_the_device_gives_the_host_batches(sta: xr.DataArray) -> None:
    """The resident path (the GPU one, here run by torch on the CPU) yields what the NumPy gather yields."""
    values = sta.values
    host = ParticleLoader(sta, 48, "memory", device="cpu", seed=5, transforms=[T.Standardize()])
    resident = ParticleLoader(sta, 48, "memory", device="cpu", seed=5, transforms=[T.Standardize()],
                              memory_on_device=True)
    assert host.batches.on_device is None and resident.batches.on_device == torch.device("cpu")  # type: ignore[attr-defined]
    assert "kept on cpu" in resident.mode_reason
    assert not resident.dataset.materialized  # read straight to the device tensor: no host copy of it all
    for epoch in range(2):
        pairs = list(zip(host, resident, strict=True))
        assert len(pairs) == 5
        for h, r in pairs:
            assert r.keys() == h.keys()
            for key in h:
                torch.testing.assert_close(r[key], h[key], rtol=0, atol=0)
        seen = np.sort(np.concatenate([r["index"].numpy() for _, r in pairs]))
        np.testing.assert_array_equal(seen, np.arange(219), err_msg=f"epoch {epoch}")
    raw = ParticleLoader(sta, 48, "memory", device="cpu", seed=5, memory_on_device=True)
    for b in raw:
        np.testing.assert_array_equal(b["image"].numpy(), values[b["index"].numpy()])
    with pytest.raises(ParameterError, match="num_workers=0"):
        ParticleLoader(sta, 8, "memory", device="cpu", num_workers=2, memory_on_device=True)


@pytest.mark.parametrize("materialized_first", [False, True])
def test_to_device_holds_the_selection_in_order(sta: xr.DataArray, materialized_first: bool) -> None:
    picks = np.array([200, 3, 17, 150, 16, 15])
    dataset = ParticleDataset(sta, indices=picks)
    if materialized_first:
        dataset.materialize()
    held = dataset.to_device(torch.device("cpu"), threads=3)
    np.testing.assert_array_equal(held.numpy(), sta.values[np.sort(picks)])  # the dataset's order: sorted
    assert dataset.to_device(torch.device("cpu")) is held  # made once
    assert pickle.loads(pickle.dumps(dataset))._on_device is None  # device memory does not travel


def test_bad_arguments(sta: xr.DataArray) -> None:
    with pytest.raises(ParameterError, match="mode"):
        ParticleLoader(sta, 8, "fast")
    with pytest.raises(ParameterError, match="batch_size"):
        ParticleLoader(sta, 0, "memory", device="cpu")
    with pytest.raises(ParameterError, match="indices"):
        ParticleLoader(sta, 8, "memory", device="cpu", split=[0, 500])
    with pytest.raises(ParameterError, match="repeat"):
        ParticleLoader(sta, 8, "memory", device="cpu", split=[1, 1])
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            ParticleLoader(sta, 8, "memory", device="cuda")
