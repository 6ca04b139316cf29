import sys

from voc.cli import main

sys.exit(main())
