"""Images to tensors: 3 channels, the recipe's size, the backbone's normalization, optional augmentation."""
from __future__ import annotations

from typing import Callable

import torch

from tlhub.data.decode import to_pil
from tlhub.interfaces import ImagePreprocessing


def augment_is_random(augment) -> bool:
    """Whether the training transform draws randomly (then the training split cannot be cached)."""
    return augment is not None and (augment.crop_padding > 0 or bool(augment.flip) or augment.rotation > 0
                                    or augment.color_jitter > 0)


def build_transform(prep: ImagePreprocessing, size: int, augment, train: bool) -> tuple[Callable, bool]:
    """(transform, deterministic) for one split."""
    from torchvision import transforms as T

    steps: list = [T.Resize((size, size))]
    random = train and augment_is_random(augment)
    if random:
        if augment.crop_padding > 0:
            steps.append(T.RandomCrop(size, padding=augment.crop_padding))
        if augment.flip:
            steps.append(T.RandomHorizontalFlip())
        if augment.rotation > 0:
            steps.append(T.RandomRotation(augment.rotation))
        if augment.color_jitter > 0:
            j = augment.color_jitter
            steps.append(T.ColorJitter(brightness=j, contrast=j, saturation=j))
    steps += [T.ToTensor(), T.Normalize(prep.mean, prep.std)]
    return T.Compose(steps), not random


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, items, labels, transform):
        self.items, self.labels, self.transform = items, list(labels), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(to_pil(self.items[i])), self.labels[i]
