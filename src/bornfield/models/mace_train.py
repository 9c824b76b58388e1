"""Entry point for mace-torch's trainer with bornfield's e3nn defaults (see ``models/__init__``).

python -m bornfield.models.mace_train <mace_run_train arguments>
"""

import sys

import bornfield.models  # noqa: F401  (sets the e3nn defaults before mace builds its modules)

if __name__ == "__main__":
    from mace.cli.run_train import main

    sys.argv[0] = "mace_run_train"
    main()
