"""``python -m gateway``: the ``dispatchline`` command."""

from gateway._entry import main

main()
