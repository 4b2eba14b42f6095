"""`python -m ftcore ...`: the command line."""

from .cli import main

raise SystemExit(main())
