"""``python -m edgecls``: the same CLI, also what torchrun launches."""

from edgecls.cli import main

main()
