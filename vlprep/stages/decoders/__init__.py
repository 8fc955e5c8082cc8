"""Video decoding for the probe and sample stages.

- :mod:`.media`: opening an input safely, the probe facts, caps, and the frame index (every
  frame's timestamp and the keyframes, from demuxing alone).
- :mod:`.geometry`: resize (shorter side), rotation and centre crop, shared by all backends.
- :mod:`.pyav_backend`, :mod:`.decord_backend`, :mod:`.ffmpeg_backend`: the decoders; each
  returns the frames at given presentation indices.
- :mod:`.job`: one probe or sample request from path to frames, the unit that runs isolated.
- :mod:`.isolation` and :mod:`.worker`: the killable child process that runs jobs.
"""
