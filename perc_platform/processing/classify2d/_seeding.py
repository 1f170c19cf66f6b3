"""Create mode's initial classes: k-means on rotation-invariant features, then rounds of align-and-average.

The helpers take the classifier (:class:`._classifier.StreamingClassifier2D`) for its search and warp; they
keep no state of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from perc_platform.processing.classify2d._align import warp

if TYPE_CHECKING:
    from perc_platform.processing.classify2d._classifier import StreamingClassifier2D

__all__ = ["class_means", "class_sums", "initial_references", "kmeans", "recentre"]


def class_sums(images: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class sums ``(k, N, N)`` (float64) of ``images`` ``(B, N, N)``: one one-hot matrix product (float32
    within a batch; the running sums across batches are float64)."""
    onehot = torch.nn.functional.one_hot(labels, k).to(images.dtype)  # (B, k)
    return (onehot.T @ images.reshape(images.shape[0], -1)).double().reshape(k, *images.shape[1:])


def sq_distances(feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, k)`` by one matrix product."""
    return ((feats**2).sum(1)[:, None] + (centres**2).sum(1)[None, :] - 2.0 * feats @ centres.T).clamp(min=0.0)


def kmeans(feats: torch.Tensor, k: int, gen: torch.Generator, iterations: int = 25
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding: (labels, centres)."""
    first = int(torch.randint(feats.shape[0], (1,), generator=gen))
    centres = feats[first: first + 1].clone()
    for _ in range(1, k):
        d2 = sq_distances(feats, centres).min(dim=1).values
        weights = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / d2.numel())
        pick = int(torch.multinomial(weights.float().cpu(), 1, generator=gen))
        centres = torch.cat([centres, feats[pick: pick + 1]])
    labels = sq_distances(feats, centres).argmin(dim=1)
    for _ in range(iterations):
        onehot = torch.nn.functional.one_hot(labels, k).to(feats.dtype)  # (n, k)
        counts = onehot.sum(0)
        filled = counts > 0
        centres[filled] = (onehot.T @ feats)[filled] / counts[filled, None]
        new = sq_distances(feats, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels, centres


def recentre(image: torch.Tensor) -> torch.Tensor:
    """``image`` ``(N, N)`` shifted so that the centre of mass of its positive part sits at the box centre."""
    box = image.shape[-1]
    weights = image.clamp(min=0.0)
    total = float(weights.sum())
    if total <= 0:
        return image
    coords = torch.arange(box, dtype=image.dtype, device=image.device) - box // 2
    cx = float((weights.sum(0) * coords).sum()) / total
    cy = float((weights.sum(1) * coords).sum()) / total
    if abs(cx) < 0.5 and abs(cy) < 0.5:
        return image
    zero = torch.zeros(1, device=image.device)
    return warp(image[None], zero, torch.tensor([[cx, cy]], device=image.device))[0]


def class_means(aligned: torch.Tensor, labels: torch.Tensor, k: int, distance: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means of aligned images; a class left (nearly) empty takes the worse half of the largest."""
    labels = labels.clone()
    counts = torch.bincount(labels, minlength=k)
    for j in range(k):
        if counts[j] >= 2:
            continue
        largest = int(counts.argmax())
        members = torch.nonzero(labels == largest).flatten()
        if members.numel() < 4:
            continue
        far = members[distance[members].argsort(descending=True)[: members.numel() // 2]]
        labels[far] = j
        counts = torch.bincount(labels, minlength=k)
    means = (class_sums(aligned, labels, k) / counts.clamp(min=1)[:, None, None]).float()
    return means, counts.double().clamp(min=1.0)


def initial_references(clf: StreamingClassifier2D, images: torch.Tensor, restarts: int = 5, rounds: int = 2
                       ) -> torch.Tensor:
    """``k`` starting references from preprocessed training images: k-means on rotation-invariant features
    (the moduli of the PCA coefficients, best of ``restarts``), then each cluster's members aligned to its most
    central member and averaged (``rounds`` times)."""
    k = clf.config.classes
    coeffs = torch.cat([clf.coefficients(part) for part in images.split(256)])  # (n, D) complex
    feats = coeffs.abs().double()
    feats = (feats - feats.mean(0)) / feats.std(0).clamp(min=1e-12)
    gen = torch.Generator().manual_seed(int(clf.config.seed))
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(restarts):
        labels, centres = kmeans(feats, k, gen)
        inertia = float(sq_distances(feats, centres).gather(1, labels[:, None]).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    assert best is not None
    _, labels, centres = best
    refs = []
    for j in range(k):
        members = torch.nonzero(labels == j).flatten().to(images.device)
        if members.numel() == 0:
            members = torch.randint(feats.shape[0], (1,), generator=gen).to(images.device)
        central = members[sq_distances(feats[members.cpu()], centres[j: j + 1])[:, 0].argmin().to(images.device)]
        ref = images[central]
        for _ in range(rounds):
            clf.set_search_references(ref[None])
            found = clf.search(images[members])
            zero = torch.zeros(members.numel(), dtype=torch.long, device=images.device)
            ref = recentre(clf.aligned(images[members], found, zero).mean(0))
        refs.append(ref)
    return torch.stack(refs)
