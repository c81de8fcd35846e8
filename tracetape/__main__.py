import sys

from tracetape.cli import main

sys.exit(main())
