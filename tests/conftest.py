import os

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

# One fixed default seed, overridable: CONDENSATION_TEST_SEED=17 pytest
SEED = int(os.environ.get("CONDENSATION_TEST_SEED", "0"))


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)
