import sys

from edge_ecg.cli import main

sys.exit(main())
