"""`import checkout` puts the repository root on sys.path, for the server launchers in devtools/
(they are not part of the llmemo package). A bench script runs from a checkout:
`python bench/NAME.py`, with bench/ on sys.path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
