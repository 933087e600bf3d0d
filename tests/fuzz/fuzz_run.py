#!/usr/bin/env python3
"""Runs a libFuzzer target for a bounded time, as CI does.

usage: fuzz_run.py TARGET SEED_DIR SECONDS [libFuzzer flags...]

New inputs go to a scratch folder, so the seeds in the tree are only read.
Any crash, sanitizer report, leak, broken invariant (abort), slow input
(over 10 s) or out-of-memory makes libFuzzer exit non-zero, and so this
script; the input that caused it is copied next to the build as
fuzz-artifacts/<target>/ and its path printed, so it can be replayed with
`TARGET FILE`.
"""
import os
import shutil
import subprocess
import sys
import tempfile

target, seeds, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
extra = sys.argv[4:]
name = os.path.basename(target)
keep = os.path.join(os.path.dirname(os.path.abspath(target)), "fuzz-artifacts", name)

with tempfile.TemporaryDirectory(prefix="snow-fuzz-") as work:
    corpus = os.path.join(work, "corpus")
    arts = os.path.join(work, "artifacts")
    os.makedirs(corpus)
    os.makedirs(arts)
    cmd = [target, "-max_total_time=" + seconds, "-timeout=10", "-rss_limit_mb=2048",
           "-print_final_stats=1", "-artifact_prefix=" + arts + "/"] + extra + [corpus, seeds]
    print(" ".join(cmd), flush=True)
    r = subprocess.run(cmd)
    found = sorted(os.listdir(arts))
    if found:
        os.makedirs(keep, exist_ok=True)
        for f in found:
            shutil.copy(os.path.join(arts, f), keep)
            print("fuzz input kept:", os.path.join(keep, f))
    # Any failure is 1: libFuzzer's own error status is 77, which meson
    # would take for "skipped".
    sys.exit(1 if r.returncode or found else 0)
