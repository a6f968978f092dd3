"""Sound file extensions the plugin reads (soundfile, libsndfile 1.1+); no imports, so listing stays cheap."""

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
