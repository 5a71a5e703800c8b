r"""Benchmark: Chinchilla L(N, D) fit of ~250 runs from Hoffmann's 4,500-start grid plus
1,000 bootstrap refits, JAX (vmapped Levenberg-Marquardt, float64) vs the usual way
(scipy.optimize.minimize L-BFGS-B in a Python loop over the grid).

`python benchmarks/bench_fit.py [--scipy_starts=60 --scipy_refits=20]`

The scipy loop runs on a random subset of the starts (plus the start JAX found best, so it
can reach the same basin) and of the refits, and its time is scaled up to the full grid and
1,000 refits. Both minimise the same objective (sum of Huber(delta=1e-3) of ln-loss
residuals, analytic gradient for scipy); the table reports both optima.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from algoprog.analysis import fit, laws

TRUTH = laws.ChinchillaLaw(1.69, 406.4, 410.7, 0.34, 0.28)


def synthetic_runs(num_runs: int, seed: int = 0):
  """Final points of `num_runs` runs: 25 sizes x 10 token ratios, 1% lognormal noise."""
  rng = np.random.default_rng(seed)
  sizes = num_runs // 10
  n = np.repeat(np.geomspace(1e7, 3e9, sizes), 10)
  d = n * np.tile(np.geomspace(2, 200, 10), sizes)
  loss = laws.chinchilla_loss(TRUTH, n, d) * np.exp(0.01 * rng.normal(size=n.size))
  return n, d, loss


def numpy_objective_and_gradient(theta, log_n, log_d, log_loss, weight, delta=1e-3):
  e, a, b, alpha, beta = theta
  terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], -1)
  top = terms.max(-1, keepdims=True)
  log_pred = (top + np.log(np.exp(terms - top).sum(-1, keepdims=True)))[:, 0]
  share = np.exp(terms - log_pred[:, None])
  r = log_pred - log_loss
  huber = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
  psi = weight * np.clip(r, -delta, delta)  # d huber / d r
  grad = np.array([psi @ share[:, 2], psi @ share[:, 0], psi @ share[:, 1],
                   -psi @ (share[:, 0] * log_n), -psi @ (share[:, 1] * log_d)])
  return float(weight @ huber), grad


def scipy_fit(start, args):
  return optimize.minimize(numpy_objective_and_gradient, start, args=args, jac=True,
                           method="L-BFGS-B",
                           # Tight tolerances: with scipy's defaults (gtol 1e-5) L-BFGS-B stops
                           # at once on this small summed-Huber objective and never refits.
                           options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-12})


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--runs", type=int, default=250)
  parser.add_argument("--bootstrap", type=int, default=1000)
  parser.add_argument("--scipy_starts", type=int, default=60)
  parser.add_argument("--scipy_refits", type=int, default=20)
  flags = parser.parse_args()
  n, d, loss = synthetic_runs(flags.runs)
  grid = fit.chinchilla_grid()

  # JAX: first call includes XLA compilation; the second is the warm cost.
  t0 = time.perf_counter()
  result = fit.fit_chinchilla(n, d, loss)
  jax_fit_cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  result = fit.fit_chinchilla(n, d, loss)
  jax_fit = time.perf_counter() - t0
  t0 = time.perf_counter()
  samples = fit.bootstrap_chinchilla(n, d, loss, result, num_samples=flags.bootstrap)
  first_alpha = np.asarray(samples.alpha[:flags.scipy_refits])
  jax_boot_cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  samples = fit.bootstrap_chinchilla(n, d, loss, result, num_samples=flags.bootstrap, seed=1)
  jax_boot = time.perf_counter() - t0

  # scipy: a subset of the grid in a Python loop, plus the start nearest JAX's optimum.
  args = (np.log(n), np.log(d), np.log(loss), np.ones_like(loss))
  rng = np.random.default_rng(0)
  subset = grid[rng.choice(len(grid), flags.scipy_starts, replace=False)]
  law = result.law
  best_theta = np.array([np.log(law.E), np.log(law.A), np.log(law.B), law.alpha, law.beta])
  nearest = grid[np.argmin(np.abs(grid - best_theta).sum(-1))]
  t0 = time.perf_counter()
  fits = [scipy_fit(s, args) for s in subset]
  scipy_per_start = (time.perf_counter() - t0) / len(subset)
  fits.append(scipy_fit(nearest, args))
  scipy_best = min(fits, key=lambda r: r.fun)
  # The same resamples as JAX's first (seed 0) bootstrap, to compare the refits.
  counts = np.asarray(fit.bootstrap_weights(jax.random.key(0), np.zeros(n.size, int),
                                            flags.bootstrap))[:flags.scipy_refits]
  t0 = time.perf_counter()
  refits = [scipy_fit(best_theta, args[:3] + (w,)) for w in counts]
  scipy_per_refit = (time.perf_counter() - t0) / flags.scipy_refits
  scipy_fit_total = scipy_per_start * len(grid)
  scipy_boot_total = scipy_per_refit * flags.bootstrap

  with jax.enable_x64(True):
    jax_objective = float(fit.chinchilla_objective(jnp.asarray(best_theta), *map(jnp.asarray,
                                                                                   args)))
  sp = scipy_best.x
  print(f"Chinchilla L(N, D) fit: {n.size} runs, {len(grid)} starts, {flags.bootstrap} "
        f"bootstrap refits; {jax.device_count()} {jax.devices()[0].platform} device(s)")
  print()
  print("| step | JAX (vmapped LM, float64) | scipy L-BFGS-B loop (scaled) | speed-up |")
  print("|---|---|---|---|")
  print(f"| grid fit ({len(grid)} starts) | {jax_fit:.2f} s (cold, with compile: "
        f"{jax_fit_cold:.2f} s) | {scipy_fit_total:.0f} s ({scipy_per_start * 1e3:.0f} ms x "
        f"{len(grid)}; measured on {len(subset)}) | {scipy_fit_total / jax_fit:.0f}x |")
  print(f"| {flags.bootstrap} bootstrap refits | {jax_boot:.2f} s (cold: {jax_boot_cold:.2f} s)"
        f" | {scipy_boot_total:.0f} s ({scipy_per_refit * 1e3:.0f} ms x {flags.bootstrap}; "
        f"measured on {flags.scipy_refits}) | {scipy_boot_total / jax_boot:.0f}x |")
  total_jax, total_jax_cold = jax_fit + jax_boot, jax_fit_cold + jax_boot_cold
  total_scipy = scipy_fit_total + scipy_boot_total
  print(f"| total | {total_jax:.2f} s (cold: {total_jax_cold:.2f} s) | {total_scipy:.0f} s | "
        f"{total_scipy / total_jax:.0f}x (cold: {total_scipy / total_jax_cold:.0f}x) |")
  print()
  print("| optimum | objective | E | A | B | alpha | beta |")
  print("|---|---|---|---|---|---|---|")
  print(f"| JAX | {result.objective:.10g} | {law.E:.5g} | {law.A:.5g} | {law.B:.5g} | "
        f"{law.alpha:.5g} | {law.beta:.5g} |")
  print(f"| scipy (best of {len(fits)}) | {scipy_best.fun:.10g} | {np.exp(sp[0]):.5g} | "
        f"{np.exp(sp[1]):.5g} | {np.exp(sp[2]):.5g} | {sp[3]:.5g} | {sp[4]:.5g} |")
  print(f"| truth | | {TRUTH.E} | {TRUTH.A} | {TRUTH.B} | {TRUTH.alpha} | {TRUTH.beta} |")
  print()
  print(f"JAX objective recomputed at its optimum: {jax_objective:.10g}; relative "
        f"difference to scipy's best: {(scipy_best.fun - result.objective) / result.objective:+.2e}"
        f"; bootstrap 95% CI of alpha: {np.nanpercentile(samples.alpha, [2.5, 97.5]).round(4)}")
  refit_alpha = np.array([r.x[3] for r in refits])
  print(f"bootstrap refits on identical resamples: max |alpha_JAX - alpha_scipy| = "
        f"{np.max(np.abs(refit_alpha - first_alpha)):.2e} over {len(refits)}")


if __name__ == "__main__":
  main()
