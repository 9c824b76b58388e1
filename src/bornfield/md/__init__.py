"""Molecular dynamics: integrators, ramps, observables, checkpoints."""
