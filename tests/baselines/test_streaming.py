"""`baselines.common.streaming`: files decoded to the square size torchvision's Resize + CenterCrop give, planned
batches decoded in DataLoader workers and returned exactly as an in-memory array's indexing would, and the
`augment=imagenet` crop that turns them into the networks' views."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from baselines.common.augment import build_augment
from baselines.common.data import DatasetError
from baselines.common.streaming import ImageFiles, StreamedImages, decode_square


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> ImageFiles:
    """30 random JPEGs of mixed, non-square sizes."""
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    names = []
    for i in range(30):
        h, w = int(rng.integers(12, 40)), int(rng.integers(12, 40))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"img_{i}.jpg")
        names.append(f"img_{i}.jpg")
    return ImageFiles(root, names, size=16)


def test_decoding_is_torchvisions_resize_then_center_crop(files) -> None:
    path = files.path(4)
    expected = v2.Compose([v2.Resize(16), v2.CenterCrop(16), v2.PILToTensor()])(Image.open(path).convert("RGB"))
    got = decode_square(path, 16)
    assert got.shape == (3, 16, 16) and got.dtype == np.uint8
    assert np.array_equal(got, expected.numpy())


def test_files_index_like_an_array_and_name_their_content(files) -> None:
    assert files.shape == (30, 3, 16, 16) and len(files) == 30
    subset = files[np.array([5, 2])]
    assert subset.shape == (2, 3, 16, 16) and subset.path(0) == files.path(5) and subset.path(1) == files.path(2)
    assert files[3:6].path(0) == files.path(3)
    assert files.fingerprint() == ImageFiles(files.root.parent / "elsewhere", files.paths, 16).fingerprint()
    assert files.fingerprint() != ImageFiles(files.root, files.paths, 24).fingerprint()  # another decode size
    assert files.fingerprint() != files[np.arange(29)].fingerprint()


def test_a_missing_or_broken_file_is_named(tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    listed = ImageFiles(tmp_path, ["broken.jpg", "absent.jpg"], 16)
    assert listed.missing(limit=5) == [tmp_path / "absent.jpg"]
    with pytest.raises(DatasetError, match="broken.jpg"):
        listed.read(0)
    with pytest.raises(ValueError, match="decode size"):
        ImageFiles(tmp_path, ["a.jpg"], 4)


@pytest.mark.parametrize("workers", [0, 2])
def test_planned_batches_are_the_arrays_rows(files, workers) -> None:
    images = StreamedImages(files, "cpu", workers=workers)
    array = torch.from_numpy(files.read_batch(range(len(files))))
    order = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    batches = list(order.split(7))
    images.plan(batches, stream="train")
    for batch in batches:
        assert torch.equal(images[batch], array[batch])
        assert torch.equal(images[batch], array[batch])  # a second read (DivideMix's two views) is the cached batch
    union = torch.cat([batches[-1], batches[-2][:3]])  # rows of two recent batches (DivideMix's mixed pool)
    assert torch.equal(images[union], array[union])
    unplanned = torch.tensor([0, 29, 13])
    assert torch.equal(images[unplanned], array[unplanned])
    assert images[torch.tensor([], dtype=torch.long)].shape == (0, 3, 16, 16)


def test_two_streams_interleave_and_a_skipped_batch_is_passed_over(files) -> None:
    images = StreamedImages(files, "cpu", workers=1, cached_batches=2)
    array = torch.from_numpy(files.read_batch(range(len(files))))
    labeled, unlabeled = list(torch.arange(0, 12).split(4)), list(torch.arange(12, 30).split(6))
    images.plan(labeled, stream="train")
    images.plan(unlabeled, stream="unlabeled")
    assert torch.equal(images[labeled[0]], array[labeled[0]])
    assert torch.equal(images[unlabeled[0]], array[unlabeled[0]])
    assert torch.equal(images[labeled[2]], array[labeled[2]])  # labeled[1] never asked for
    assert torch.equal(images[unlabeled[1]], array[unlabeled[1]])
    images.plan(list(torch.arange(0, 12).split(4)), stream="train")  # the next epoch's plan replaces the rest
    assert torch.equal(images[labeled[1]], array[labeled[1]])


def test_bad_worker_count_is_refused(files) -> None:
    with pytest.raises(ValueError, match="dataset.workers"):
        StreamedImages(files, "cpu", workers=-1)


A_SIGNAL_TO_THE_GROUP_WHILE_THE_WORKERS_START = textwrap.dedent("""
    import os, signal, sys, time
    from baselines.common.interrupts import sigterm_as_interrupt
    from baselines.common.streaming import ImageFiles, StreamedImages
    files = ImageFiles(sys.argv[2], sys.argv[3:], size=16)
    run = os.getpid()
    os.register_at_fork(after_in_child=lambda: time.sleep(3))  # a worker slow to reach its own code
    try:
        with sigterm_as_interrupt():
            images = StreamedImages(files, "cpu", workers=2)
            images.plan([[0, 1], [2, 3]])
            os.killpg(0, getattr(signal, sys.argv[1]))  # every process of the group, the starting workers too
            time.sleep(60)
    except KeyboardInterrupt:  # Terminated, or Ctrl-C's own
        print("stopped in the run" if os.getpid() == run else "stopped in a worker")
""")


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_that_reaches_a_decode_worker_before_its_handler_ends_it_quietly(files, signame) -> None:
    """A forked worker has the run's handlers until its own code takes over: a job's SIGTERM (SLURM) or a
    terminal's Ctrl-C in between must not raise the run's interrupt in the worker (a traceback, or a worker that
    carries on as the run)."""
    names = [files.path(i).name for i in range(4)]
    done = subprocess.run([sys.executable, "-c", A_SIGNAL_TO_THE_GROUP_WHILE_THE_WORKERS_START, signame,
                           str(files.path(0).parent), *names], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=600, start_new_session=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "stopped in the run\n", "")


def test_imagenet_views_are_random_windows_for_training_and_the_central_one_for_evaluation() -> None:
    augment = build_augment("imagenet", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), {"crop_size": 2})  # x / 255
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(64, 3, 4, 4).contiguous()
    central = (augment(image, train=False) * 255).round()
    assert central.shape == (64, 3, 2, 2) and torch.equal(central[0, 0], torch.tensor([[5.0, 6.0], [9.0, 10.0]]))
    views = (augment(image, train=True, generator=torch.Generator().manual_seed(0)) * 255).round()
    assert views.shape == (64, 3, 2, 2) and augment.output_shape((3, 4, 4)) == (3, 2, 2)
    windows = {tuple(v[0].flatten().tolist()) for v in views}
    allowed = {(float(image[0, 0, r, c]), float(image[0, 0, r, c + 1]), float(image[0, 0, r + 1, c]),
                float(image[0, 0, r + 1, c + 1])) for r in range(3) for c in range(3)}
    mirrored = {(b, a, d, c) for a, b, c, d in allowed}
    assert windows <= allowed | mirrored and len(windows) > 9  # every window and its mirror can occur
    with pytest.raises(ValueError, match="crop_size"):
        augment(torch.zeros(2, 3, 1, 1, dtype=torch.uint8))
