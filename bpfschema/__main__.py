"""``python -m bpfschema``: the ``bpfschema`` command line."""

from bpfschema.cli import main

raise SystemExit(main())
