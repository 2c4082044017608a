"""Report figures as PNG bytes (matplotlib, Agg backend: no display, no network, no fonts fetched).

Every function takes the tables of :mod:`pipeline.report.analysis` and returns PNG bytes. PNGs are
written without a software/time stamp so the same data gives the same bytes on one machine.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.models.components import COMPONENTS  # noqa: E402

ARCH_COLORS = {"linux": "#4c72b0", "xen": "#c44e52", "dbnet": "#55a868", "xen1": "#8172b2"}
_EXTRA = ["#ccb974", "#64b5cd", "#937860", "#da8bc3", "#8c8c8c"]
COMPONENT_COLORS = dict(zip(COMPONENTS, ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462",
                                         "#b3de69", "#fccde5"], strict=True))
CONTEXT_COLORS = {"kernel": "#4c72b0", "vmm": "#dd8452", "dom0": "#c44e52", "guest": "#55a868"}


def arch_color(arch: str, i: int = 0) -> str:
    return ARCH_COLORS.get(arch, _EXTRA[i % len(_EXTRA)])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def components_figure(comp: pd.DataFrame, title: str = "Cycles per packet by component") -> bytes:
    """Stacked bars: one bar per architecture, one segment per component."""
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    x = np.arange(len(comp.index))
    bottom = np.zeros(len(x))
    for c in COMPONENTS:
        v = comp[c].fillna(0.0).to_numpy()
        if v.any():
            ax.bar(x, v, bottom=bottom, label=c, color=COMPONENT_COLORS[c], edgecolor="white", linewidth=0.5)
        bottom += v
    for xi, tot in zip(x, bottom, strict=True):
        ax.annotate(f"{tot:,.0f}", (xi, tot), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, list(comp.index))
    ax.set_ylabel("cycles / packet")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(bottom.max() * 1.12, 1.0))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _png(fig)


def saturation_cpu_figure(arch: pd.DataFrame, ctx: pd.DataFrame) -> bytes:
    """Left: saturation throughput per architecture; right: CPU utilisation per context (stacked)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.4))
    names = list(arch.index)
    x = np.arange(len(names))
    a1.bar(x, arch.saturation_mbps.fillna(0).to_numpy(), color=[arch_color(a, i) for i, a in enumerate(names)])
    for xi, v, lim in zip(x, arch.saturation_mbps, arch.limited_by, strict=True):
        if np.isfinite(v):
            a1.annotate(f"{v:,.0f}\n({lim})" if lim else f"{v:,.0f}", (xi, v), ha="center", va="bottom",
                        fontsize=7)
    a1.set_xticks(x, names)
    a1.set_ylabel("Mb/s")
    a1.set_title("Saturation throughput", fontsize=10)
    top = arch.saturation_mbps.max()
    a1.set_ylim(0, (top if np.isfinite(top) and top > 0 else 1.0) * 1.25)
    bottom = np.zeros(len(x))
    for c in [c for c in CONTEXT_COLORS if c in ctx.columns]:
        v = ctx.loc[names, c].fillna(0).to_numpy()
        if v.any():
            a2.bar(x, v, bottom=bottom, label=c, color=CONTEXT_COLORS[c])
        bottom += v
    a2.set_xticks(x, names)
    a2.set_ylabel("% of one CPU")
    a2.set_title("CPU utilisation by context (trace timing)", fontsize=10)
    a2.legend(fontsize=7, frameon=False)
    return _png(fig)


def interval_figure(series: pd.DataFrame) -> bytes:
    """Cycles per interval over time, one line per architecture."""
    fig, ax = plt.subplots(figsize=(8.0, 3.2))
    for i, a in enumerate(series.columns):
        ax.step(series.index, series[a], where="post", label=a, color=arch_color(a, i), linewidth=1.2)
    ax.set_xlabel("time since first packet (s)")
    ax.set_ylabel(f"Mcycles per {series.attrs.get('interval_s', 0):g} s")
    ax.set_title("Cycles per interval", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def sweep_figure(sweep: pd.DataFrame, link_mbps: float | None = None,
                 saturation: dict[str, float] | None = None) -> bytes:
    """Delivered against offered throughput per architecture (the time-compression sweep)."""
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    for i, (a, g) in enumerate(sweep.groupby("arch", sort=False)):
        ax.plot(g.offered_mbps, g.delivered_mbps, marker="o", markersize=3, label=a, color=arch_color(a, i))
        if saturation and np.isfinite(saturation.get(a, np.nan)):
            ax.axvline(saturation[a], color=arch_color(a, i), linestyle=":", linewidth=0.8)
    m = float(np.nanmax(sweep.offered_mbps)) if len(sweep) else 1.0
    ax.plot([0, m], [0, m], color="#999999", linewidth=0.8, linestyle="--", label="offered = delivered")
    if link_mbps:
        ax.axhline(link_mbps, color="#444444", linewidth=0.8, linestyle="-.", label="link rate")
    ax.set_xlabel("offered load (Mb/s, trace time-compressed)")
    ax.set_ylabel("delivered (Mb/s)")
    ax.set_title("Throughput against offered load (dotted: saturation point)", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def tornado_figure(tornado: dict[str, pd.DataFrame]) -> bytes:
    """One tornado panel per architecture: % change of cycles/packet at each parameter's low/high."""
    archs = [a for a, t in tornado.items() if len(t)]
    n = max(len(archs), 1)
    rows = max([len(tornado[a]) for a in archs] + [1])
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 0.32 * rows + 1.4), squeeze=False)
    for ax, a in zip(axes[0], archs, strict=False):
        t = tornado[a].iloc[::-1]
        y = np.arange(len(t))
        ax.barh(y, t.low_pct, color="#4c72b0", label="low")
        ax.barh(y, t.high_pct, color="#c44e52", label="high")
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_yticks(y, list(t.param), fontsize=7)
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("% change of cycles/packet", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    if not archs:
        axes[0][0].text(0.5, 0.5, "no parameter moves the result", ha="center", va="center")
        axes[0][0].set_axis_off()
    else:
        axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    return _png(fig)


def grouped_bars_figure(df: pd.DataFrame, group: str, series: str, value: str, ylabel: str, title: str) -> bytes:
    """Grouped bars: one group per ``group`` value, one bar per ``series`` value (e.g. trace x arch)."""
    groups = list(dict.fromkeys(df[group]))
    names = list(dict.fromkeys(df[series]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 3), 3.4))
    w = 0.8 / max(len(names), 1)
    x = np.arange(len(groups))
    for i, s in enumerate(names):
        sub = df[df[series] == s].set_index(group)
        v = [float(sub.loc[g, value]) if g in sub.index else np.nan for g in groups]
        ax.bar(x + (i - (len(names) - 1) / 2) * w, v, width=w, label=s, color=arch_color(s, i))
    ax.set_xticks(x, groups, fontsize=8, rotation=15 if len(groups) > 3 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def validation_figure(checks: list) -> bytes:
    """Modeled / published per check (validation.Check with numbers), log scale, coloured by role."""
    rows = [c for c in checks if c.kind in ("value", "bound") and c.published and c.modeled is not None
            and np.isfinite(c.modeled) and c.modeled > 0]
    fig, ax = plt.subplots(figsize=(8.0, 0.3 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    colors = {"fitted": "#8c8c8c", "held out": "#4c72b0"}
    ax.axvspan(0.9, 1.1, color="#dddddd", zorder=0)
    ax.axvline(1.0, color="black", linewidth=0.6)
    for yi, c in zip(y, rows, strict=True):
        r = c.modeled / c.published
        ax.barh(yi, r - 1.0, left=1.0, color=colors.get(c.role, "#c44e52") if c.ok else "#c44e52", height=0.6)
    ax.set_yticks(y, [f"{c.id} {c.what}"[:60] for c in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("modeled / published (grey: fitted, blue: held out and agrees, red: misses)", fontsize=8)
    return _png(fig)
