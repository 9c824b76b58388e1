"""Models: the MACE force field (mace-torch), the equivariant Z* model (e3nn), baselines."""
