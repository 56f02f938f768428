#!/usr/bin/env python3
"""Rewrite a checkpoint as an older checkpoint format held it: format_version set to VERSION,
the named attributes removed (root attributes, or GROUP/NAME such as config/val-batch for an
option the older program did not have), each /history row cut to its first COLUMNS values,
and the CRC-32 file beside it renewed, so that the run's restart of an old checkpoint can be
tested.
usage: old_checkpoint.py FILE VERSION COLUMNS [ATTRIBUTE...]"""
import sys
import zlib

import h5py
import numpy as np

path, version, columns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(path, "r+") as f:
    f.attrs["format_version"] = np.int64(version)
    for name in sys.argv[4:]:
        group, _, attr = name.rpartition("/")
        del f[group or "/"].attrs[attr]
    k = int(f.attrs["outer_step"])
    hist = np.asarray(f["history"])
    if k:
        hist = hist.reshape(k, hist.size // k)[:, :columns].ravel()
    del f["history"]
    f.create_dataset("history", data=hist)
data = open(path, "rb").read()
with open(path + ".crc32", "w") as crc:
    crc.write("%08x %d\n" % (zlib.crc32(data), len(data)))
