#!/usr/bin/env python3
"""Runs a libFuzzer target for a short time on a scratch copy of its seed
corpus, so new inputs never land in the source tree.

usage: http_run.py TARGET SEED_DIR SECONDS
"""
import subprocess
import sys
import tempfile

target, seeds, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory(prefix="snow-fuzz-") as work:
    r = subprocess.run([target, "-max_total_time=" + seconds, "-print_final_stats=1",
                        "-artifact_prefix=" + work + "/", work, seeds])
    sys.exit(r.returncode)
