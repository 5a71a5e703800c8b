"""Seed noise with its own interval, ablation CEG intervals from seed pairs, and the
smallest CEG an ablation could have detected.

Seed noise (`pooled_seed_noise`, `seed_noise_from_runs`). Runs that differ only in their
seed (same label, width, LR, budget, stage: the key of diagnostics.seed_noise) give the
final-loss standard deviation sigma (nats). Configurations are pooled:
s**2 = sum_i (n_i - 1) s_i**2 / nu with nu = sum_i (n_i - 1) degrees of freedom, and, for
Gaussian seed noise, nu s**2 / sigma**2 ~ chi-square(nu), so the interval at `level` is
[s sqrt(nu / chi2_{(1+level)/2}(nu)), s sqrt(nu / chi2_{(1-level)/2}(nu))]. With 2 seeds a
configuration adds 1 dof: one configuration gives a 95% interval of [0.45 s, 31.9 s], four
give [0.60 s, 2.87 s], ten [0.70 s, 1.75 s] (`chi_square_factors`).

Ablation CEG (`ablation_ceg`). The gain of a component is CEG = C_ablated / C_base at a
target loss: the compute the model without it (ablated) needs over the compute the model
with it (base) needs (> 1: the component helps), each from the run's first crossing of the
target (ceg.crossing_compute). Runs are paired by seed; d_s = ln C_ablated,s - ln C_base,s.
Two intervals of ln CEG = mean(d):
  paired       mean(d) +- t_{n-1} sd(d) / sqrt(n): uses only these pairs. With 2 pairs
               t_1 = 12.7 (95%): ~6.5x the width a known sigma would give; it is honest
               but rarely informative.
  seed noise   uses the pooled seed noise (more dof, from every configuration with seeds):
               a seed shifts a curve by sigma vertically, hence its crossing by
               sigma / |dL/d ln C| in ln C (the curve's slope at the target, measured on
               each group's runs); sd(d_s)**2 = sigma**2 (1/slope_base**2 +
               1/slope_ablated**2), interval mean(d) +- t_nu sd(d_s) / sqrt(n).
A pair in which one run never reaches the target bounds its ratio (that run needs more than
its whole run's compute): the result is then a lower (or upper) bound, never a capped value.
Smallest detectable CEG: a two-sided test at 1 - level with power `power` detects
ln CEG >= (z_{(1+level)/2} + z_power) sd(d_s) / sqrt(n); reported from the seed noise's
estimate and from its upper bound (the conservative value). Assumptions: Gaussian seed
noise, equal across configurations, a constant vertical offset near the target.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from algoprog import lr_law
from algoprog.analysis import ceg
from algoprog.analysis.runs import RunTable

SEED_KEY = lr_law.SEED_KEY


def chi_square_factors(dof: int, level: float = 0.95) -> tuple[float, float]:
  """(lower, upper) multipliers of a sample SD with `dof` degrees of freedom giving the
  chi-square interval of sigma at `level`."""
  if dof < 1:
    return math.nan, math.nan
  tail = (1 - level) / 2
  return (math.sqrt(dof / stats.chi2.ppf(1 - tail, dof)),
          math.sqrt(dof / stats.chi2.ppf(tail, dof)))


@dataclasses.dataclass(frozen=True)
class SeedNoiseInterval:
  """Pooled seed-to-seed SD of final loss (nats) with its chi-square interval.

  dof: sum over configurations of (seeds - 1). configurations: those with >= 2 seeds.
  seeds: (min, max) seeds per configuration. NaN sd when nothing was run with seeds.
  """
  sd: float
  lower: float
  upper: float
  dof: int
  configurations: int
  seeds: tuple[int, int]
  level: float

  def summary(self) -> str:
    if not self.dof:
      return ("seed noise not measured: no configuration was run with several seeds (run "
              "at least 2 seeds of a few configurations)")
    lo, hi = chi_square_factors(self.dof, self.level)
    seeds = (f"{self.seeds[0]}" if self.seeds[0] == self.seeds[1]
             else f"{self.seeds[0]}-{self.seeds[1]}")
    return (f"seed noise {self.sd:.4f} nats [{self.lower:.4f}, {self.upper:.4f}] "
            f"({self.level:.0%}, chi-square with {self.dof} dof from {self.configurations} "
            f"configuration(s) of {seeds} seeds: the interval spans {lo:.2f}x to {hi:.2f}x "
            "the estimate)")

  def to_json(self) -> dict:
    return {"sd": _num(self.sd), "lower": _num(self.lower), "upper": _num(self.upper),
            "dof": self.dof, "configurations": self.configurations,
            "seeds": list(self.seeds), "level": self.level, "summary": self.summary()}


def _num(v: float) -> float | None:
  return float(v) if math.isfinite(v) else None


def pooled_seed_noise(finals: Mapping[Hashable, Sequence[float]], *, level: float = 0.95
                      ) -> SeedNoiseInterval:
  """Pooled SD and chi-square interval from {configuration: final losses of its seeds}
  (configurations with one seed add nothing)."""
  groups = [np.asarray(v, np.float64) for v in finals.values()]
  groups = [g[np.isfinite(g)] for g in groups]
  groups = [g for g in groups if g.size >= 2]
  dof = int(sum(g.size - 1 for g in groups))
  if not dof:
    return SeedNoiseInterval(math.nan, math.nan, math.nan, 0, 0, (0, 0), level)
  ss = sum(float(np.sum((g - g.mean())**2)) for g in groups)
  sd = math.sqrt(ss / dof)
  lo, hi = chi_square_factors(dof, level)
  sizes = [g.size for g in groups]
  return SeedNoiseInterval(sd, sd * lo, sd * hi, dof, len(groups), (min(sizes), max(sizes)),
                           level)


seed_finals = lr_law.seed_finals  # (shared with the sweep's runner-up criterion)


def seed_noise_from_runs(run_infos: Iterable[Mapping], *, level: float = 0.95
                         ) -> SeedNoiseInterval:
  """`pooled_seed_noise` of run.json records (`seed_finals`)."""
  return pooled_seed_noise(seed_finals(run_infos), level=level)


# ----------------------------------------------------------------------------------------
# Ablations.


@dataclasses.dataclass(frozen=True)
class AblationCeg:
  """CEG = C_ablated / C_base at `target_loss` from seed pairs (module docstring).

  ceg: exp(mean ln ratio). paired_lower/upper: t interval of the pairs (dof pairs - 1; NaN
  with one pair). noise_lower/upper: interval from the pooled seed noise (dof
  noise.dof; NaN without it). slope_base/slope_ablated: dL/d ln C at the target (nats per
  e-fold of compute, < 0). detectable_ceg: smallest CEG a test at 1 - level with `power`
  detects given the noise estimate; detectable_ceg_conservative: with its upper bound.
  pair_cegs: per seed. unpaired: runs without a partner or a crossing (named).
  bound: "" for an estimate; "lower" when some ablated run never reaches the target (its
  whole run's compute stands in: the CEG is at least `ceg`), "upper" likewise for a base
  run; intervals and the detectable CEG are then NaN.
  """
  base: str
  ablated: str
  target_loss: float
  pairs: int
  ceg: float
  pair_cegs: tuple[float, ...]
  paired_lower: float
  paired_upper: float
  noise_lower: float
  noise_upper: float
  slope_base: float
  slope_ablated: float
  log_compute_sd: float
  detectable_ceg: float
  detectable_ceg_conservative: float
  power: float
  level: float
  unpaired: tuple[str, ...]
  bound: str = ""  # "lower"/"upper": some ablated/base run never reached the target

  def summary(self) -> str:
    if self.bound:
      short = "ablated" if self.bound == "lower" else "base"
      return (f"{self.base} over {self.ablated} at loss {self.target_loss:g}: CEG "
              f"{'>=' if self.bound == 'lower' else '<='} {self.ceg:.3g}x ({self.bound} bound "
              f"from {self.pairs} seed pair(s): the {short} run of some pair never reaches "
              f"the target, so it needs more than its whole run: "
              f"{', '.join(self.unpaired)})")
    parts = [f"{self.base} over {self.ablated} at loss {self.target_loss:g}: CEG "
             f"{self.ceg:.3g}x from {self.pairs} seed pair(s)"]
    if math.isfinite(self.paired_lower):
      parts.append(f"paired {self.level:.0%} interval [{self.paired_lower:.3g}, "
                   f"{self.paired_upper:.3g}] (t with {self.pairs - 1} dof"
                   + (f": t = {stats.t.ppf(0.5 + self.level / 2, 1):.1f} with 2 seeds)"
                      if self.pairs == 2 else ")"))
    if math.isfinite(self.noise_lower):
      parts.append(f"from the pooled seed noise [{self.noise_lower:.3g}, "
                   f"{self.noise_upper:.3g}]")
    if math.isfinite(self.detectable_ceg):
      parts.append(f"smallest detectable CEG {self.detectable_ceg:.3g}x "
                   f"({self.detectable_ceg_conservative:.3g}x at the noise's upper bound; "
                   f"power {self.power:.0%})")
    return "; ".join(parts)

  def to_json(self) -> dict:
    out = {k: (_num(v) if isinstance(v, float) else v)
           for k, v in dataclasses.asdict(self).items()}
    out["pair_cegs"] = [_num(v) for v in self.pair_cegs]
    out["unpaired"] = list(self.unpaired)
    out["summary"] = self.summary()
    return out


def crossing_slope(compute: np.ndarray, loss: np.ndarray, target_loss: float) -> float:
  """dL/d ln C (nats per e-fold) of one curve at its first crossing of `target_loss`: the
  slope of the segment that crosses it; NaN if it never does."""
  compute, loss = np.asarray(compute, np.float64), np.asarray(loss, np.float64)
  reached = np.flatnonzero(loss <= target_loss)
  if reached.size == 0 or reached[0] == 0:
    return math.nan
  i = int(reached[0])
  return float((loss[i] - loss[i - 1]) / math.log(compute[i] / compute[i - 1]))


def _runs_by_seed(table: RunTable, group: str, seeds: Mapping[str, Hashable] | None
                  ) -> dict[Hashable, str]:
  """{seed: run_id} of `group`'s runs; LR-sweep runs (run.json stage "lr_sweep") are not
  ablation runs and are skipped."""
  sub = table.only_groups([group])
  out: dict[Hashable, str] = {}
  for run_id in sub.run_ids:
    info = table.run_info.get(run_id, {})
    if info.get("stage") == "lr_sweep":
      continue
    seed = (seeds or {}).get(run_id, info.get("seed", run_id))
    if seed in out:
      raise ValueError(f"group {group}: runs {out[seed]} and {run_id} share seed {seed}; "
                       "pass seeds= or a table of one run per seed")
    out[seed] = run_id
  return out


def ablation_ceg(table: RunTable, base: str, ablated: str, target_loss: float, *,
                 noise: SeedNoiseInterval | None = None,
                 seeds: Mapping[str, Hashable] | None = None, level: float = 0.95,
                 power: float = 0.8) -> AblationCeg:
  """CEG of `base` over `ablated` (C_ablated / C_base) at `target_loss` (nats/token) from
  seed pairs, with paired and seed-noise intervals and the smallest detectable CEG.

  Args:
    table: the runs. base, ablated: groups (with / without the component).
    noise: pooled seed noise (default: none; only the paired interval).
    seeds: run_id -> seed (default: run.json's seed, else each run its own seed).
  Raises:
    TargetNotReached: no seed pair in which both runs reach the target.
  """
  by_seed = {name: _runs_by_seed(table, name, seeds) for name in (base, ablated)}
  common = [s for s in by_seed[base] if s in by_seed[ablated]]
  unpaired = [r for name in (base, ablated) for s, r in by_seed[name].items()
              if s not in common]
  ratios, slopes = [], {base: [], ablated: []}
  bounds = []  # (ln ratio bound, "lower"/"upper") of pairs where one run falls short
  for s in common:
    cs, short = {}, {}
    for name in (base, ablated):
      run_id = by_seed[name][s]
      rows = table.run_id == run_id
      try:
        cs[name] = ceg.crossing_compute(table.compute[rows], table.loss[rows], target_loss,
                                        name=f"run {run_id} ({name})")
      except ceg.TargetNotReached:
        unpaired.append(run_id)
        if table.loss[rows][0] > target_loss:  # falls short: needs more than its compute
          short[name] = float(table.compute[rows][-1])
        continue
      slopes[name].append(crossing_slope(table.compute[rows], table.loss[rows], target_loss))
    if len(cs) == 2:
      ratios.append(math.log(cs[ablated] / cs[base]))
    elif base in cs and ablated in short:
      bounds.append((math.log(short[ablated] / cs[base]), "lower"))
    elif ablated in cs and base in short:
      bounds.append((math.log(cs[ablated] / short[base]), "upper"))
  if not ratios and not bounds:
    raise ceg.TargetNotReached(f"{base} vs {ablated}: no seed pair in which both runs reach "
                               f"loss {target_loss:g}")
  kinds = {k for _, k in bounds}
  if bounds and len(kinds) == 1:
    # Some pairs only bound their ratio: the mean over pairs is then a bound too (every
    # term is the value or a bound on the same side); intervals are not available.
    kind = kinds.pop()
    d = np.asarray(ratios + [v for v, _ in bounds])
    return AblationCeg(base, ablated, float(target_loss), int(d.size), math.exp(d.mean()),
                       tuple(float(math.exp(v)) for v in d), *(math.nan,) * 4,
                       math.nan, math.nan, math.nan, math.nan, math.nan, power, level,
                       tuple(unpaired), kind)
  if not ratios:
    raise ceg.TargetNotReached(f"{base} vs {ablated}: seed pairs bound the CEG from both "
                               f"sides at loss {target_loss:g}; no estimate")
  d = np.asarray(ratios)
  n = d.size
  mean = float(d.mean())
  if n >= 2:
    half = stats.t.ppf(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    paired = (math.exp(mean - half), math.exp(mean + half))
  else:
    paired = (math.nan, math.nan)
  slope_b = float(np.nanmean(slopes[base])) if slopes[base] else math.nan
  slope_a = float(np.nanmean(slopes[ablated])) if slopes[ablated] else math.nan
  noise_interval = (math.nan, math.nan)
  sd_d = detect = detect_hi = math.nan
  if noise is not None and noise.dof and slope_b < 0 and slope_a < 0:
    unit = math.sqrt(1 / slope_b**2 + 1 / slope_a**2)  # ln C per nat of seed noise
    sd_d = noise.sd * unit
    half = stats.t.ppf(0.5 + level / 2, noise.dof) * sd_d / math.sqrt(n)
    noise_interval = (math.exp(mean - half), math.exp(mean + half))
    z = stats.norm.ppf(0.5 + level / 2) + stats.norm.ppf(power)
    detect = math.exp(z * sd_d / math.sqrt(n))
    detect_hi = math.exp(z * noise.upper * unit / math.sqrt(n))
  return AblationCeg(base, ablated, float(target_loss), n, math.exp(mean),
                     tuple(float(math.exp(v)) for v in d), *paired, *noise_interval,
                     slope_b, slope_a, sd_d, detect, detect_hi, power, level,
                     tuple(unpaired), "")
