"""Training loop: stream particles through the torch loader with cryo-EM transforms and train a tiny CNN.

Run: python examples/training_loop.py   (labels come from the STAR class column; device "cuda" if present)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import perc_platform as pp
from perc_platform.ml import ParticleLoader
from perc_platform.ml.transforms import Standardize
from perc_platform.testing import write_stack, write_star


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="perc-train-"))
    write_stack(folder / "particles.mrcs", 1024, (32, 32))
    write_star(folder / "particles.star", "particles.mrcs", 1024)
    images = pp.open_particles(folder / "particles.mrcs", star=folder / "particles.star")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = ParticleLoader(images, batch_size=128, mode="stream", device=device, seed=0,
                            labels="class_number", transforms=[Standardize()])
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(128, 3)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(2):
        total, seen = 0.0, 0
        for batch in loader:
            logits = model(batch["image"].unsqueeze(1))
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch["label"])
            seen += len(batch["label"])
        print(f"epoch {epoch}: {seen} images, mean loss {total / seen:.4f} on {device}")


if __name__ == "__main__":
    main()
