"""``python -m alexnet_export``: the same as the ``alexnet-export`` console script."""

from alexnet_export._entry import main

main()
