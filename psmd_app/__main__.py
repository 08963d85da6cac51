"""``python -m psmd_app``: the same as the ``psmd-app`` command."""

from psmd_app.app import main

if __name__ == "__main__":
    raise SystemExit(main())
