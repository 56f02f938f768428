#!/usr/bin/env python3
"""Check the module layering of src/: every #include points down (or sideways, within a
folder), never up, and HDF5 stays out of the folders that must not see it.

The folders, from the bottom up, are listed in LAYERS; a file may include headers of its own
folder and of folders below it. A public header include/nhgd/X.h counts as the folder that
implements it (PUBLIC), so including it is an arrow to that folder; export.h and version.h
are below everything, nhgd.h (the umbrella) is for programs only.

usage: scripts/check-layers.py [SOURCE_DIR]   (exit 1 and one line per violation when any)
"""
import os
import re
import sys

LAYERS = ["core", "linalg", "io", "data", "problems", "inner", "estimators", "outer", "cli"]
PUBLIC = {
    "export.h": None,
    "version.h": None,
    "errors.h": "core",
    "log.h": "core",
    "options.h": "core",
    "stop.h": "core",
    "history.h": "io",
    "checkpoint.h": "io",
    "output.h": "io",
    "data.h": "data",
    "problem.h": "problems",
    "solver.h": "outer",
    "metrics.h": "outer",
    "nhgd.h": "cli",
}
# Folders that must not see HDF5: the estimators write checkpoints through sections.
NO_HDF5 = {"core", "linalg", "problems", "inner", "estimators"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def layer_of(path_in_src):
    return path_in_src.split("/")[0]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    src = os.path.join(root, "src")
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad, arrows, files = [], set(), 0
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            here = layer_of(rel)
            if here not in rank:
                bad.append(f"src/{rel}: folder {here} is not in the layer list")
                continue
            files += 1
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for kind, inc in INCLUDE.findall(text):
                if kind == "<":
                    if here in NO_HDF5 and inc.startswith("hdf5"):
                        bad.append(f"src/{rel}: includes <{inc}> (HDF5 stays out of {here}/)")
                    continue
                if inc.startswith("nhgd/"):
                    to = PUBLIC.get(inc[len("nhgd/"):], "unknown")
                    if to == "unknown":
                        bad.append(f"src/{rel}: public header {inc} has no implementing folder")
                        continue
                    if to is None:
                        continue
                else:
                    to = layer_of(inc)
                    if to not in rank:
                        continue  # a header beside the file (the program's own cli.h)
                    if here in NO_HDF5 and inc in ("io/h5util.h", "io/bcmat_h5.h",
                                                   "io/section_impl.h"):
                        bad.append(f"src/{rel}: includes {inc} (HDF5 stays out of {here}/)")
                if to != here:
                    arrows.add((here, to))
                if rank[to] > rank[here]:
                    bad.append(f"src/{rel}: includes {inc}: {here}/ reaches up to {to}/")
    for line in bad:
        print(line)
    print(f"{files} files, {len(arrows)} arrows between folders, {len(bad)} violations")
    for here, to in sorted(arrows, key=lambda a: (rank[a[0]], rank[a[1]])):
        print(f"  {here} -> {to}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
