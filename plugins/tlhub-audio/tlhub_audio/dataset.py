"""The training-side dataset of the audio modality (imports torch, so it lives apart from modality.py)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tlhub.errors import UserError

from tlhub_audio import features as F


class AudioDataset(torch.utils.data.Dataset):
    """``(features [3, size, size], label)`` per item; with ``shift``/``masks``, SpecAugment-style random time
    shift and time/frequency masks (drawn from torch's generator, which the trainer seeds)."""

    def __init__(self, items: Sequence, labels: Sequence[int], s: F.FeatureSettings, shift: float = 0.0,
                 masks: int = 0):
        self.items, self.labels, self.s, self.shift, self.masks = items, list(labels), s, shift, masks

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        s = self.s
        try:
            pic = F.picture(F.log_mel(F.waveform(F.as_clip(self.items[i], s.sample_rate), s), s), s.size)
        except ValueError as exc:
            raise UserError(f"audio: {exc}") from None
        if self.shift or self.masks:
            pic = self.augment(pic)
        return torch.from_numpy(F.normalize(pic, s)), self.labels[i]

    def augment(self, pic: np.ndarray) -> np.ndarray:
        """The picture (``[size, size]``, 0..1) shifted in time and masked; what is shifted in or masked is
        silence (0), as the padding around a short clip is."""
        pic = pic.copy()
        size = pic.shape[1]
        most = int(self.shift * size)
        if most:
            k = int(torch.randint(-most, most + 1, ()).item())
            pic = np.roll(pic, k, axis=1)
            if k > 0:
                pic[:, :k] = 0.0
            elif k < 0:
                pic[:, k:] = 0.0
        for _ in range(self.masks):
            for axis in (0, 1):  # a band of frequencies, then a stretch of time
                width = int(torch.randint(1, max(2, size // 8), ()).item())
                start = int(torch.randint(0, size - width + 1, ()).item())
                if axis == 0:
                    pic[start:start + width, :] = 0.0
                else:
                    pic[:, start:start + width] = 0.0
        return pic
