"""clean_run.py [--keep] WORK COMMAND... -- run a parity or sample check, then remove
its work directory WORK if the check passed.

The checks write real models and checkpoints (ViT-B, ConvNeXt: 100-340 MB
each); left behind they took 8-9 GB per build directory, and CI's disk
filled before the cross builds (2026-12-01). A failed check keeps WORK for
the post-mortem; TSD_KEEP_WORK=1 keeps it always (the content-hashed cache
in parity/ then speeds up the next run), and so does --keep (a work root
that the cross builds share).
"""
import os
import shutil
import subprocess
import sys


def main():
    argv = sys.argv[1:]
    keep = bool(os.environ.get("TSD_KEEP_WORK"))
    if argv[:1] == ["--keep"]:
        keep, argv = True, argv[1:]
    if len(argv) < 2:
        sys.exit("usage: clean_run.py [--keep] WORK COMMAND...")
    work, cmd = argv[0], argv[1:]
    rc = subprocess.call(cmd)
    if rc == 0 and not keep and os.path.isdir(work):
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
