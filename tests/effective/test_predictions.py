"""T* predictions in the spectral form (what the train command's horizon note uses)."""

import numpy as np

import condensation as C
from condensation.effective import predictions as pred


def test_spectral_t_star_equals_the_reduced_forms_and_falls_back_where_bz_is_0():
    cfg = C.load_config(None, ["model.widths=[12, 9]", "init.seeds=[0, 1]", "data.n=20"])
    data, spec, ens = C.prepare(cfg)
    reduced = pred.t_star_predictions(ens.params, data.z, spec.activation)
    spectral = pred.t_star_predictions(ens.params, data.z, spec.activation, "spectral")
    assert all(r is not None for r in reduced)
    for (t_r, log_r), (t_s, log_s) in zip(reduced, spectral):
        assert abs(t_s / t_r - 1) < 1e-8 and abs(log_s - log_r) < 1e-8
    # a member whose first layer does not see z (B z = 0): the reduced form instead
    params = [np.array(p) for p in ens.params]
    params[0][1] = 0.0
    forms = [s.form for s in pred.effective_systems(params, data.z, spec.activation, "spectral")]
    assert forms == ["spectral", "reduced"]
