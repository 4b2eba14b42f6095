"""`python -m ftcore ...`: the command line."""

from .cli.main import main

raise SystemExit(main())
