"""bornfield: finite-temperature dielectric response of polar crystals.

DFT labels (ABINIT) -> MACE force field + equivariant Born-charge model -> molecular dynamics in an
electric field -> dielectric tensor, P(E) and phase transitions. See ``DESIGN.md`` in the shared
notes and the README.
"""

__version__ = "0.1.0"
