import sys

from builder_app.cli import main

sys.exit(main())
