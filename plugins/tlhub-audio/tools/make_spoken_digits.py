#!/usr/bin/env python3
"""Make a spoken-digits data set ("zero".."nine") with espeak-ng and sox, in class folders of 16 kHz mono WAV.

    python plugins/tlhub-audio/tools/make_spoken_digits.py /tmp/spoken_digits            # ~1,600 clips, ~3 min
    python plugins/tlhub-audio/tools/make_spoken_digits.py /tmp/sd --train 200 --val 50 --test 100 --seed 1

Writes ``OUT/train/0..9/``, ``OUT/val/0..9/`` and ``OUT/test/0..9/`` (the ``audio-folders`` source reads those
as the run's splits) and ``OUT/voices.json`` (which voices each split used). The three splits use DISJOINT
voices: a voice is an espeak-ng base (an English dialect, or another language's voice reading an English
digit respelled in its own spelling, i.e. an accent) plus a voice variant (timbre: ``+m3``, ``+f2``,
``+Annie``, ...). Every variant belongs to one split only, and two bases are heard in the test split only,
so the test accuracy is measured on voices the model never heard in training or validation.

Each clip draws its speed (words per minute), pitch, sox pitch shift (moves the formants: another vocal tract),
tempo, band limits (another microphone), gain, leading/trailing silence and pink/white/brown noise at a random
signal-to-noise ratio. Everything is seeded (sox runs with -R and no dither), so the same arguments write the
same files. Needs the ``espeak-ng`` and ``sox`` programs (Debian: ``apt-get install espeak-ng sox``).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ENGLISH = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc"]
# Another language's voice reads the English digit respelled in its own spelling: English with that accent
# (plain English text in a German voice reads "one" as "o-ne", a word no speaker says). Checked with `espeak-ng -x`.
ACCENTS = {
    "de": ["sieroh", "wann", "tuh", "sri", "foah", "feiw", "sicks", "sewwen", "ehjt", "nein"],
    "es": ["síro", "uán", "tu", "srí", "for", "fáiv", "sics", "séven", "éit", "náin"],
    "it": ["síro", "uàn", "tu", "srì", "for", "fàiv", "sics", "sèven", "èit", "nàin"],
    "fr": ["ziro", "ouane", "tou", "sri", "for", "faïve", "sixe", "sévène", "eïte", "naïne"],
    "pl": ["ziroł", "łan", "tu", "sri", "fo", "fajw", "syks", "sewen", "ejt", "najn"],
    "nl": ["sierou", "wan", "toe", "srie", "foor", "fijf", "siks", "sevven", "eejt", "najn"],
}
TEST_ONLY_BASES = ["en-gb-x-gbcwmd", "nl"]  # dialect / accent never heard in training or validation
# Human-sounding variants (robots, whispers and croaks left out).
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "adam", "Alex",
            "Alicia", "Andrea", "Andy", "Annie", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed",
            "edward", "Gene", "Hugo", "Jacky", "john", "Lee", "linda", "max", "Michael", "Mike", "paul", "quincy",
            "rob", "robert", "steph", "zac", "anika", "grandma", "grandpa", "norbert", "sandro", "shelby",
            "travis", "victor", "iven", "Denis", "Mario", "michel", "pablo"]
SPLIT_SHARE = {"train": 0.6, "val": 0.15, "test": 0.25}  # of the variants
SR = 16000


@dataclass(frozen=True)
class Voice:
    base: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.base}+{self.variant}"

    def text(self, digit: int) -> str:
        return ACCENTS[self.base][digit] if self.base in ACCENTS else WORDS[digit]


def assign_voices(seed: int) -> dict[str, list[Voice]]:
    """Voices per split: the variants are partitioned between splits; test-only bases appear in test only."""
    rng = random.Random(seed)
    variants = VARIANTS[:]
    rng.shuffle(variants)
    n_train = round(len(variants) * SPLIT_SHARE["train"])
    n_val = round(len(variants) * SPLIT_SHARE["val"])
    parts = {"train": variants[:n_train], "val": variants[n_train:n_train + n_val],
             "test": variants[n_train + n_val:]}
    bases = ENGLISH + list(ACCENTS)
    seen_bases = [b for b in bases if b not in TEST_ONLY_BASES]
    return {split: [Voice(b, v) for b in (bases if split == "test" else seen_bases) for v in vs]
            for split, vs in parts.items()}


def run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


def duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def make_clip(voice: Voice, digit: int, rng: random.Random, out: Path, tmp: Path) -> dict:
    """One clip: espeak-ng, then sox (rate, band, pitch, tempo, gain, silence), then noise mixed in."""
    speed, pitch = rng.randint(110, 210), rng.randint(15, 85)
    shift, tempo = rng.randint(-250, 250), round(rng.uniform(0.85, 1.15), 3)
    hp, lp = rng.choice([60, 100, 200, 300]), rng.choice([3400, 4000, 5500, 7000, 7900])
    gain, lead, tail = rng.uniform(-18, -1), rng.uniform(0.0, 0.35), rng.uniform(0.0, 0.35)
    snr, colour = rng.uniform(12, 40), rng.choice(["whitenoise", "pinknoise", "brownnoise"])
    raw, clean = tmp / "raw.wav", tmp / "clean.wav"
    run(["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", str(pitch), "-w", str(raw), voice.text(digit)])
    run(["sox", "-R", "-D", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(clean),
         "highpass", str(hp), "lowpass", str(lp), "pitch", str(shift), "tempo", str(tempo),
         "gain", "-n", f"{gain:.1f}", "pad", f"{lead:.3f}", f"{tail:.3f}"])
    # noise at `snr` dB below the speech peak level: the clean clip is normalized to `gain` dBFS peak
    vol = 10 ** ((gain - snr) / 20)
    run(["sox", "-R", "-D", "-m", "-v", "1", str(clean), "-v", "1",
         f"|sox -R -n -r {SR} -c 1 -p synth {duration(clean):.4f} {colour} vol {vol:.6f}",
         "-b", "16", str(out)])
    return {"file": str(out), "voice": voice.name, "speed": speed, "pitch": pitch, "shift_cents": shift,
            "tempo": tempo, "band": [hp, lp], "gain_db": round(gain, 1), "snr_db": round(snr, 1), "noise": colour}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output folder (must not exist, or be empty)")
    ap.add_argument("--train", type=int, default=1000, help="training clips (default 1000)")
    ap.add_argument("--val", type=int, default=200, help="validation clips (default 200)")
    ap.add_argument("--test", type=int, default=400, help="test clips, held-out voices (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    missing = [p for p in ("espeak-ng", "sox") if shutil.which(p) is None]
    if missing:
        print(f"error: {' and '.join(missing)} not found (Debian: apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} exists and is not empty; give a new folder", file=sys.stderr)
        return 2
    voices = assign_voices(args.seed)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    log: dict = {"seed": args.seed, "voices": {s: [v.name for v in vs] for s, vs in voices.items()}, "clips": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for split, n in counts.items():
            rng = random.Random(f"{args.seed}:{split}")
            pool, clips = voices[split], []
            for i in range(n):
                digit = i % 10  # balanced classes
                voice = pool[rng.randrange(len(pool))]
                folder = args.out / split / str(digit)
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{split}{i:05d}_{voice.name.replace('+', '_')}.wav"
                clips.append(make_clip(voice, digit, rng, folder / name, tmp))
            log["clips"][split] = clips
            print(f"{split}: {n} clips, {len(pool)} voices", flush=True)
    (args.out / "voices.json").write_text(json.dumps(log, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
