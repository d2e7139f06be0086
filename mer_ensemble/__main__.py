"""``python -m mer_ensemble`` runs the CLI."""

from mer_ensemble.cli import main

main()
