"""The shipped applications: spoken digits (FSDD), ECG beats (MIT-BIH, AAMI classes) and EMG
gestures (Myo).

:mod:`.stream` is the streaming readout (features per utterance, beat or window, the linear
readout, :func:`~.stream.run_stream`); :mod:`.tasks` knows each task's data folders, reservoir
network and ground truth. ``spikeedge eval`` (:mod:`spikeedge.eval`) and the retraining tool
(``python -m spikeedge.tools.train_apps``) both go through them.
"""
