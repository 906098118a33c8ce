import sys

from tidewaiter.cli.main import main

sys.exit(main())
