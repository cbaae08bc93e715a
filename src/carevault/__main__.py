"""``python -m carevault`` runs the CLI."""

from carevault.cli import main

# Guarded: worker processes (``serve --workers``, ``import``) are spawned, and a spawned
# process imports the parent's main module again; it must not run the CLI a second time.
if __name__ == "__main__":
    main()
