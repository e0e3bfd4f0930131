"""Test session set-up: figures and generated data go to temporary folders (unless set),
so that running the tests never changes the repository. nbval kernels inherit these."""

import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_scratch = pathlib.Path(tempfile.mkdtemp(prefix="labutils-tests-"))
os.environ.setdefault("LABUTILS_FIGURES", str(_scratch / "figures"))
os.environ.setdefault("LABUTILS_DATA", str(_scratch / "data"))
os.environ.setdefault("LABUTILS_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
