"""A plain jitted JAX GD script of the default example's network: three layers, tanh,
n = 100, d = 5, widths m, m, float64, lr 0.05; no tracking, no snapshots, no output.
The yardstick of ``bench_process.py``: ``python benchmarks/naive_gd.py WIDTH STEPS``."""

import sys

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
m, steps = int(sys.argv[1]), int(sys.argv[2])
k = jax.random.split(jax.random.PRNGKey(0), 5)
x, z = jax.random.normal(k[0], (100, 5)), jax.random.normal(k[1], (5,))
y = jnp.tanh(x @ z)
shapes = [(m, 5), (m, m), (1, m)]
params = tuple(1e-3 * jax.random.normal(kk, s) for kk, s in zip(k[2:], shapes))


def loss(p):
    out = jnp.tanh(jnp.tanh(x @ p[0].T) @ p[1].T) @ p[2].T
    return 0.5 * jnp.mean((out[:, 0] - y) ** 2)


def step(_, p):
    return tuple(w - 0.05 * g for w, g in zip(p, jax.grad(loss)(p)))


final = jax.jit(lambda p: jax.lax.fori_loop(0, steps, step, p))(params)
print(float(loss(final)))
