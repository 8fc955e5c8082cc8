"""The training app: VideoCLIP, ALPRO and STOA-VLP trained from a vlprep feature store.

Kept apart from the pipeline library (as open_clip_train is from open_clip): it reads the
store's Parquet tables and never imports Ray or the stages. Entry points are the
``vlprep train`` and ``vlprep eval`` commands (:mod:`vlprep.train.app`).
"""
