"""Entry point for mace-torch's trainer with bornfield's e3nn defaults (see ``models/__init__``)
and, where they apply, bornfield's fused scalar convolutions (``models/mace_fused``): the model
that mace-torch builds is fused before training (same state_dict, same gradients, faster on
CPU) and saved with mace-torch's layers put back by ``force_field.train_ff``.

python -m bornfield.models.mace_train <mace_run_train arguments>
"""

import os
import sys

import bornfield.models  # noqa: F401  (sets the e3nn defaults before mace builds its modules)


def _fused(configure_model):
    import logging

    from bornfield.models.mace_fused import fuse_scalar_convolutions

    def configure(*args, **kwargs):
        model, output_args = configure_model(*args, **kwargs)
        n = fuse_scalar_convolutions(model)
        logging.info(f"bornfield: training with {n} fused scalar convolution(s)")
        return model, output_args

    return configure


if __name__ == "__main__":
    from mace.cli import run_train

    if os.environ.get("BORNFIELD_FUSE", "1") == "1":  # FFPreset.fuse
        run_train.configure_model = _fused(run_train.configure_model)
    sys.argv[0] = "mace_run_train"
    run_train.main()
