"""`bornfield run` trains missing models from [models] train_data, once."""

from dataclasses import replace

import pytest
from helpers import BATIO3

from bornfield.config import load_config
from bornfield.errors import BornfieldError
from bornfield.pipeline import resolve_models


@pytest.mark.slow
def test_missing_models_are_trained_once(tmp_path):
    if not BATIO3.is_file():
        pytest.skip("shared BaTiO3 data missing")
    from bornfield.data import io

    io.write(tmp_path / "train.xyz", io.read(BATIO3)[:5])
    (tmp_path / "c.toml").write_text(
        '[models]\nff = "none/ff"\nbec = "none/bec"\ntrain_data = "train.xyz"\n'
        "ff_epochs = 2\nbec_epochs = 2\nbec_channels = 4\n"
    )
    cfg = load_config(tmp_path / "c.toml")
    logs: list[str] = []
    ff, bec = resolve_models(cfg, tmp_path / "out", logs.append)
    assert (ff / "ff_float32.model").exists() and (bec / "bec.pt").exists()
    assert sum("training" in m for m in logs) == 2
    logs.clear()
    assert resolve_models(cfg, tmp_path / "out", logs.append) == (ff, bec)
    assert not any("training" in m for m in logs)
    bad = replace(load_config(), models=replace(load_config().models, ff="none/ff"))
    with pytest.raises(BornfieldError, match="none/ff not found"):
        resolve_models(bad, tmp_path / "out2", logs.append)
