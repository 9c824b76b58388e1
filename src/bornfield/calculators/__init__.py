"""ASE calculators: the force field + Born-charge model + electric field composite."""

from bornfield.calculators.field_calculator import FieldCalculator

__all__ = ["FieldCalculator"]
