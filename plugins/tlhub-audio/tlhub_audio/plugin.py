"""tlhub entry point (group ``tlhub``): the ``audio`` modality and the ``audio-folders`` data source.

Listing must stay cheap: this module imports no torch, numpy or librosa; ``load`` imports them on first use.
"""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.modality import ModalitySpec
from tlhub.options import REQUIRED, Opt
from tlhub.registry import DataSourceSpec

from tlhub_audio.formats import EXTENSIONS


def _range(lo: float, hi: float):
    def check(v) -> str:
        return "" if lo <= v <= hi else f"must be in [{lo:g}, {hi:g}]"
    return check


def _at_least(lo: float):
    def check(v) -> str:
        return "" if v >= lo else f"must be at least {lo:g}"
    return check


# The [data.preprocess] options of the audio modality (defaults: tlhub_audio.features.FeatureSettings).
OPTIONS = (
    Opt("sample_rate", int, 16000, "sample rate (Hz) every sound is resampled to", check=_range(4000, 96000)),
    Opt("clip_seconds", float, 1.0, "shorter sounds are centred in this much silence; longer ones are kept whole",
        check=_range(0.05, 60)),
    Opt("n_mels", int, 64, "mel bands of the spectrogram (its height before the resize)", check=_range(8, 256)),
    Opt("window_ms", float, 32.0, "STFT window length (ms)", check=_range(1, 500)),
    Opt("hop_ms", float, 10.0, "STFT hop (ms): one spectrogram column per hop", check=_range(0.5, 500)),
    Opt("fmin", float, 20.0, "lowest mel frequency (Hz)", check=_at_least(0)),
    Opt("fmax", float, 0.0, "highest mel frequency (Hz); 0: half the sample rate", check=_at_least(0)),
    Opt("trim_db", float, 30.0, "cut leading/trailing sound this many dB below the peak (0: keep all)",
        check=_range(0, 120)),
    Opt("top_db", float, 80.0, "dynamic range of the log-mel picture (dB below the peak shown as black)",
        check=_range(10, 200)),
    Opt("time_shift", float, 0.0, "training only: shift each spectrogram in time by up to this fraction of its "
                                  "width, at random (0: off; on, the training split is not cached)",
        check=_range(0, 0.5)),
    Opt("masks", int, 0, "training only: SpecAugment, this many random time and frequency bands masked per "
                         "example (0: off; on, the training split is not cached)", check=_range(0, 8)),
)


def _load_modality():
    from tlhub_audio.modality import AudioModality
    return AudioModality()


def _load_folders(options, ctx):
    from tlhub_audio.folders import load_audio_folders
    return load_audio_folders(options, ctx)


@hookimpl
def register_modalities(register):
    register(ModalitySpec("audio", "sounds (WAV, FLAC, OGG, MP3) as log-mel spectrogram images for image "
                          "backbones (soundfile + soxr + librosa)", _load_modality, feeds=("image",),
                          options=OPTIONS))


@hookimpl
def register_data_sources(register):
    register(DataSourceSpec("audio-folders", "one sub-folder of sound files per class; train/val/test sub-folders "
                            "(any case; also training, valid, validation, dev, testing) become splits; "
                            "unreadable files are skipped and listed", "audio", _load_folders,
                            options=(Opt("path", str, REQUIRED, "the folder (relative paths: to the recipe)"),
                                     Opt("extensions", list, list(EXTENSIONS), "sound file extensions"))))
