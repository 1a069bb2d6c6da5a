"""Training curves from a run's TensorBoard events, as a PNG beside the checkpoints."""

from __future__ import annotations

from pathlib import Path

CURVES = (("Train/mean_reward", "mean episode reward (clipped at 0 per step)"),
          ("Episode_Reward/motion_body_pos", "body-position tracking reward per episode"),
          ("Train/mean_episode_length", "mean episode length (steps)"),
          ("Metrics/motion/error_body_pos", "body position error (m)"))


def read_scalars(run: Path | str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of every event file in the run, as (iteration, value), ordered by iteration
    (a resumed run appends to the same tags)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for events in sorted(Path(run).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return {tag: sorted(values.items()) for tag, values in out.items()}


def plot_curves(run: Path | str, path: Path | str | None = None) -> Path:
    """training_curves.png: reward, episode length and tracking errors against iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = read_scalars(run)
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    for ax, (tag, label) in zip(axes, CURVES):
        points = scalars.get(tag, [])
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path) if path else Path(run) / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
