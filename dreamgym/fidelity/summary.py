"""The fidelity report's judgement: the sections computed from its measurements, one verdict
line per check against :data:`THRESHOLDS`, and the markdown summary (``fidelity.md``).
:mod:`dreamgym.fidelity.report` says what each check measures."""

from __future__ import annotations

from typing import Any

import numpy as np

from dreamgym.fidelity import metrics

THRESHOLDS = {
    "survival_tolerance": 0.25,
    "done_auroc_k10": 0.8,
    "done_ece": 0.05,
    "reward_tolerance": 0.25,
}
DONE_K = (1, 10)


def survival_entry(name: str, dream, real_lengths, real_returns, real_terminated, kind: str,
                   expected_ends: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """One policy's row: its dream episodes against its real ones, and, given
    ``expected_ends`` (per real episode, see :func:`~dreamgym.fidelity.measure.expected_ends`),
    the episode ends the dream expects along the real episodes against their deaths."""
    tol = THRESHOLDS["survival_tolerance"]
    d_len, r_len = metrics.summary(dream.lengths), metrics.summary(real_lengths)
    d_ret, r_ret = metrics.summary(dream.returns), metrics.summary(real_returns)
    ratio = d_len["mean"] / max(r_len["mean"], 1e-9)
    length_ok = metrics.within(d_len["mean"], r_len["mean"], tol)
    return_ok = metrics.within(d_ret["mean"], r_ret["mean"], tol)
    survival = (f"survival {ratio:.2f}x real ({d_len['mean']:.0f} vs {r_len['mean']:.0f} "
                "steps)")  # fmt: skip
    returns = f"return {d_ret['mean']:.1f} vs {r_ret['mean']:.1f} real"
    need = f"need within +-{tol:.0%}"
    if not return_ok:  # what an optimiser chases decides first
        decided_by, higher = "return", d_ret["mean"] > r_ret["mean"]
        verdict = f"{name}: dream {returns} ({need}); {survival}"
    elif not length_ok:
        decided_by, higher = "survival", d_len["mean"] > r_len["mean"]
        verdict = f"{name}: dream {survival} ({need}); {returns}"
    else:
        decided_by, higher = None, False
        verdict = f"{name}: dream {survival}, {returns} (both {need})"
    ends = None
    if expected_ends is not None:
        ends = {"expected": float(np.sum(expected_ends)), "observed": int(np.sum(real_terminated))}
        verdict += "; " + ends_text(ends)
    verdict += ": "
    verdict += "OK" if decided_by is None else ("EXPLOITABLE" if higher else "TOO HARSH")
    return {
        "name": name, "kind": kind, "ok": decided_by is None, "decided_by": decided_by,
        "verdict": verdict,
        "dream": {"length": d_len, "return": d_ret,
                  "terminated": float(np.mean(dream.terminated))},
        "real": {"length": r_len, "return": r_ret,
                 "terminated": float(np.mean(real_terminated))},
        "ends_along_real": ends,
        "ks_length": metrics.ks_statistic(dream.lengths, real_lengths),
        "transfer_gap": d_ret["mean"] - r_ret["mean"],
        "lengths": {"dream": dream.lengths.tolist(), "real": list(map(int, real_lengths))},
        "returns": {"dream": dream.returns.tolist(), "real": list(map(float, real_returns))},
    }  # fmt: skip


def ends_text(ends: dict[str, Any]) -> str:
    """``ends_along_real`` in words: the ends the dream expects along the real episodes, per
    real death."""
    expected, observed = ends["expected"], ends["observed"]
    if observed == 0:
        return f"the dream expects {expected:.1f} ends along them, the game had none"
    return (
        f"the dream expects {expected / observed:.2f} ends per real death along them "
        f"({expected:.1f} for {observed})"
    )


def finite(x: Any) -> Any:
    """NaN (e.g. an AUROC without deaths) as None, so that the JSON stays valid."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def done_section(follow, lengths: np.ndarray, terminated: np.ndarray) -> dict[str, Any]:
    probs = np.concatenate(follow.done_prob)
    out: dict[str, Any] = {"steps": int(len(probs)), "deaths": int(terminated.sum())}
    for k in DONE_K:  # scored by the dream's own chance of ending within k steps
        labels = np.concatenate(metrics.ends_within(lengths, terminated, k))
        scores = np.concatenate(follow.ends_within[k]) if k in follow.ends_within else probs
        out[f"auroc_k{k}"] = metrics.auroc(scores, labels)
        if k > 1:  # what the next-step probability alone gives, for comparison
            out[f"auroc_k{k}_next_step_score"] = metrics.auroc(probs, labels)
    labels = np.concatenate(metrics.ends_within(lengths, terminated, 1))
    out["ece"], out["reliability"] = metrics.reliability(probs, labels)
    # What the sampled done rule implies: expected deaths per episode along real episodes.
    out["predicted_deaths"] = float(np.mean([p.sum() for p in follow.done_prob]))
    out["observed_deaths"] = float(terminated.mean())
    last = np.array([p[-1] for p in follow.done_prob])
    before = np.concatenate([p[:-1] for p in follow.done_prob])
    out["fires_at_death"] = float(np.mean(last[terminated] > 0.5)) if terminated.any() else None
    out["false_alarms"] = float(np.mean(before > 0.5)) if len(before) else None
    return out


def reward_section(follow, episodes) -> dict[str, Any]:
    step_err = np.concatenate([p - e.rewards for p, e in zip(follow.reward_pred, episodes,
                                                                strict=True)])  # fmt: skip
    sums_pred = np.array([p.sum() for p in follow.reward_pred])
    sums_real = np.array([e.total_reward for e in episodes])
    return {
        "step_mae": float(np.abs(step_err).mean()),
        "step_rmse": float(np.sqrt((step_err**2).mean())),
        "episode_mae": float(np.abs(sums_pred - sums_real).mean()),
        "episode_bias": float((sums_pred - sums_real).mean()),
        "real_return_mean": float(sums_real.mean()),
    }


def openloop_section(follow) -> dict[str, Any]:
    def clean(x: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else float(v) for v in x]

    valid = follow.openloop_count > 0
    return {
        "horizons": int(valid.sum()),
        "count": follow.openloop_count.astype(int).tolist(),
        "latent_error": clean(follow.latent_error),
        "latent_error_copy": clean(follow.latent_error_copy),
        "frame_error": clean(follow.frame_error),
        "frame_error_copy": clean(follow.frame_error_copy),
        "frame_error_recon": clean(follow.frame_error_recon),
        "frame_error_mean_frame": clean(follow.frame_error_mean_frame),
        "latent_error_mean": float(np.nanmean(follow.latent_error[valid])),
        "latent_error_copy_mean": float(np.nanmean(follow.latent_error_copy[valid])),
        "frame_error_mean": float(np.nanmean(follow.frame_error[valid])),
        "frame_error_copy_mean": float(np.nanmean(follow.frame_error_copy[valid])),
        "frame_error_recon_mean": float(np.nanmean(follow.frame_error_recon[valid])),
        "frame_error_mean_frame_mean": float(np.nanmean(follow.frame_error_mean_frame[valid])),
    }


def verdicts(report: dict[str, Any]) -> list[str]:
    """One line per check, ending in OK, in n/a (nothing to judge), or in what is wrong. Each
    line leads with the quantity that decided its verdict, and that quantity's threshold."""
    t, lines = report["thresholds"], [s["verdict"] for s in report["survival"]]
    tol = f"need within +-{t['survival_tolerance']:.0%}"
    d = report["done"]
    if d["deaths"] == 0:
        lines.append(
            f"done head: no held-out episode ended before the cap ({d['steps']} steps), "
            "nothing to discriminate: n/a"
        )
    else:
        auc = d["auroc_k10"]
        lines.append(
            f"done head: AUROC {auc:.2f} within 10 steps (need >= {t['done_auroc_k10']}; "
            f"scored by the dream's 10-step probability, the next-step probability alone scores "
            f"{d['auroc_k10_next_step_score']:.2f}), {d['auroc_k1']:.2f} at the next step: "
            + ("OK" if auc >= t["done_auroc_k10"] else "WEAK")
        )
    ece = f"ECE {d['ece']:.3f} (need <= {t['done_ece']})"
    deaths = (f"{d['predicted_deaths']:.2f} deaths per episode predicted along real episodes vs "
              f"{d['observed_deaths']:.2f} observed")  # fmt: skip
    if not metrics.within(d["predicted_deaths"], d["observed_deaths"], t["survival_tolerance"]):
        lines.append(f"done calibration: {deaths} ({tol}); {ece}: MISCALIBRATED")
    elif d["ece"] > t["done_ece"]:
        lines.append(f"done calibration: {ece}; {deaths} ({tol}): MISCALIBRATED")
    else:
        lines.append(f"done calibration: {ece}, {deaths} ({tol}): OK")
    r = report["reward"]
    allowed = t["reward_tolerance"] * max(abs(r["real_return_mean"]), 1.0)
    lines.append(
        f"reward head: episode-sum error {r['episode_mae']:.1f} (need <= {allowed:.1f}, "
        f"{t['reward_tolerance']:.0%} of the real mean return {r['real_return_mean']:.1f}; bias "
        f"{r['episode_bias']:+.1f}): " + ("OK" if r["episode_mae"] <= allowed else "OFF")
    )
    o = report["openloop"]
    blur = (f"V's reconstruction error {o['frame_error_recon_mean']:.4f} vs "
            f"{o['frame_error_mean_frame_mean']:.4f} predicting the real frames' mean "
            "frame")  # fmt: skip
    latent = (f"latent error {o['latent_error_mean']:.3f} vs {o['latent_error_copy_mean']:.3f} "
              "copying the start frame")  # fmt: skip
    head = f"open loop (1..{o['horizons']} steps): "
    if not o["frame_error_recon_mean"] < o["frame_error_mean_frame_mean"]:
        lines.append(f"{head}{blur} (need below it); {latent}: V NO BETTER THAN A BLUR")
    elif not o["latent_error_mean"] < o["latent_error_copy_mean"]:
        lines.append(f"{head}{latent} (need below it); {blur}: NO BETTER THAN COPYING")
    else:
        lines.append(f"{head}{latent}, {blur} (need below both): OK")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The human summary: verdicts, then the survival table and the figures."""
    c = report["config"]
    h = report.get("held_out", {})
    if h.get("source") == "collected":
        source = (f"collected by this report into `{report['data']}` ({h['reason']}; policy "
                  f"{h['policy']}, seed {h['seed']})")  # fmt: skip
    else:
        source = f"from `{report['data']}`"
    lines = [
        f"# Dream fidelity: {report['env']}",
        "",
        f"World model `{report['world_model']}`; {report['held_out_episodes']} held-out real "
        f"episodes {source}; dream at tau {c['temperature']:g}, done rule "
        f"{c['done_mode']}, {c['dream_episodes']} dream episodes per policy, "
        f"{c['real_episodes']} real episodes per probe or controller.",
        "",
        *[f"- {v}" for v in report["verdicts"]],
        "",
        "| policy | dream length mean (p10-p90) | real length mean (p10-p90) | KS | dream return |"
        " real return | dream's ends per real death, along the real episodes | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["survival"]:
        dl, rl = s["dream"]["length"], s["real"]["length"]
        lines.append(
            f"| {s['name']} | {dl['mean']:.0f} ({dl['p10']:.0f}-{dl['p90']:.0f}) | "
            f"{rl['mean']:.0f} ({rl['p10']:.0f}-{rl['p90']:.0f}) | {s['ks_length']:.2f} | "
            f"{s['dream']['return']['mean']:.1f} | {s['real']['return']['mean']:.1f} | "
            f"{_ends_cell(s.get('ends_along_real'))} | {'OK' if s['ok'] else 'no'} |"
        )
    lines += ["", "![survival](survival.png) ![reliability](reliability.png) "
              "![open loop](openloop.png)", ""]  # fmt: skip
    return "\n".join(lines)


def _ends_cell(ends: dict[str, Any] | None) -> str:
    if not ends or not ends["observed"]:
        return "-"
    return f"{ends['expected'] / ends['observed']:.2f}"
