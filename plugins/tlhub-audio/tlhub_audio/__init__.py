"""tlhub-audio: an audio modality (log-mel spectrograms for image backbones) and the audio-folders source."""
