"""Analysis: model errors and parity plots; later dielectric response and phases."""
