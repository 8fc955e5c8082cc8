"""vlprep: offline preprocessing for video-language pretraining."""

__version__ = "0.1.0"
