"""Model cards (Markdown) of checkpoints, written from their own recorded configuration.

One layout for every card (:func:`render_card`): title, facts, the command that trained the
network, sections, the training data with SHA-256 and where the data came from.
:func:`model_card` fills it for an SR network (``geo-med-sr train``, task upscale) and
:func:`guided_card` for a guided sharpening network (task sharpen).

Usage: ``python -m geo_med_sr.models.card MODEL.safetensors --command "geo-med-sr train ..."``
writes ``MODEL.md`` next to it: data files with SHA-256, command, steps, time, validation PSNR;
``--evaluation RESULT.json ...`` (from ``geo-med-sr evaluate --json`` or
``benchmarks/bench_quality.py``) adds the scores on the validation files. Guided cards:
``python -m geo_med_sr.sharpening.train card MODEL.safetensors [--bench JSON]``.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path

from geo_med_sr.models.checkpoint import sidecar_path

__all__ = ["evaluation_rows", "guided_card", "model_card", "render_card"]


def render_card(
    title: str,
    facts: Sequence[str],
    command: str,
    sections: Iterable[Sequence[str]],
    files: Iterable[tuple[str, str]],
    sources: str,
) -> str:
    """The Markdown of a model card.

    Args:
        title: the card's heading (the checkpoint's stem).
        facts: Markdown lines before the command (bullets; the last one introduces the command).
        command: the exact command that trained the network (a ``bash`` block).
        sections: blocks of Markdown lines after the command, each preceded by a blank line.
        files: ``(name, sha256)`` of every training file, in table order.
        sources: the closing line (where the data and its licences are described).

    Returns:
        The card, ending with a newline.
    """
    lines = [f"# {title}", "", *facts, "", "```bash", command, "```"]
    for section in sections:
        lines += ["", *section]
    lines += ["", "## Training data (SHA-256)", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {name} | `{sha256}` |" for name, sha256 in files]
    lines += ["", sources]
    return "\n".join(lines) + "\n"


def evaluation_rows(results: list[dict]) -> list[str]:
    """Markdown rows: file, scale, classical PSNRs, the model's PSNR and its gains (dB)."""
    rows = [
        "| file | scale | bicubic | bspline | bspline-ibp | model | gain over best of bicubic/bspline | gain over "
        "bspline-ibp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        psnr = {m["method"]: m["psnr"] for m in result["methods"]}
        gain = result["gains_db"]["model"]
        rows.append(
            f"| {Path(result['reference']).name} | {','.join(map(str, result['scale']))} | {psnr['bicubic']:.2f} | "
            f"{psnr['bspline']:.2f} | {psnr['bspline-ibp']:.2f} "
            f"| {psnr['model']:.2f} | {gain['over_classical']:+.2f} | {gain['over_bspline_ibp']:+.2f} |"
        )
    return rows


def model_card(checkpoint: Path, command: str, evaluation: list[dict] | None = None) -> str:
    """The Markdown card of ``checkpoint`` (read from its JSON sidecar)."""
    info = json.loads(sidecar_path(checkpoint).read_text())
    train = info.get("extra", {}).get("train", {})
    config = train.get("config", {})
    history = train.get("val_psnr", [])
    degradation = (config.get("degradation") or {}).get("name", "blockavg")
    facts = [
        f"- Network: `{info['network']['name']}` {json.dumps(info['network']['params'])}",
        f"- Scale {info['scale']}, {info['spatial_dims']}D, {info['in_channels']} channel (multiband images run band "
        "by band)",
        f"- Degradation: {json.dumps(config.get('degradation'))}; normalisation: {json.dumps(config.get('normalize'))}",
        f"- Trained by this project's own command, {train.get('step')} steps in {train.get('seconds', 0):.0f} s on "
        f"{platform.machine()} CPU ({platform.platform()}):",
    ]
    sections = [
        [
            f"## Validation PSNR during training (normalised values, held-out files, `{degradation}` degradation)",
            "",
            *(
                ["| step | PSNR dB |", "|---|---|", *[f"| {step} | {value:.3f} |" for step, value in history]]
                if history
                else ["None recorded (trained without `--val`)."]
            ),
        ]
    ]
    if evaluation:
        sections.append(
            ["## Scores on the validation files (`geo-med-sr evaluate`, PSNR dB)", "", *evaluation_rows(evaluation)]
        )
    return render_card(
        checkpoint.stem,
        facts,
        command,
        sections,
        [(f["name"], f["sha256"]) for f in train.get("files", [])],
        "Sources and licences of these files: `../shared/data/train/README.md` of the project workspace.",
    )


def guided_card(checkpoint: Path, bench: Path | None = None) -> str:
    """The Markdown card of a guided sharpening checkpoint (from its JSON sidecar; scores from ``bench``).

    Args:
        checkpoint: the ``.safetensors`` file (its ``.json`` sidecar is read).
        bench: a ``benchmarks/bench_sharpen.py`` JSON report; its rows for this model are added.
    """
    info = json.loads(sidecar_path(checkpoint).read_text())
    extra = info.get("extra", {})
    config = extra.get("train_config", {})
    facts = [
        f"- Guided sharpening network `{info['network']['name']}` {json.dumps(info['network']['params'])}: residual "
        "over the cubic-upsampled bands, zero-initialised last layer (MONAI Convolution/ResidualUnit blocks).",
        f"- Ratio x{extra.get('ratio')}; targets {extra.get('targets') or 'any band (band-wise)'}; guides "
        f"{extra.get('guides')}.",
        f"- Trained by this project's own `geo-med-sr train` (task: sharpen), {extra.get('steps')} steps, last L1 "
        f"{extra.get('loss', 0):.4f} (normalised units), on {platform.machine()} CPU:",
    ]
    protocol = [
        f"- Training config: `{json.dumps(config)}`",
        "- Protocol: reduced-resolution (Wald) pairs of each scene, every band reduced by the ratio (block average, "
        "exact area averages where grids are offset); per-scene band statistics for normalisation.",
    ]
    if config.get("region"):
        protocol.append(
            f"- Only the columns {config['region']} (fractions) of each scene were used; the rest is held out."
        )
    sections = [protocol]
    if bench and bench.is_file():
        rows = _bench_rows(json.loads(bench.read_text()), checkpoint.stem)
        if rows:
            sections.append([f"## Scores (`benchmarks/bench_sharpen.py`, {bench.name}; mean PSNR dB)", "", *rows])
    files = [(f"{Path(f).parent.name}/{Path(f).name}", h) for f, h in sorted(extra.get("files_sha256", {}).items())]
    return render_card(
        checkpoint.stem,
        facts,
        extra.get("command", ""),
        sections,
        files,
        "Sources and licences of these files: `../shared/data/README.md` of the project workspace.",
    )


def _bench_rows(report: dict, stem: str) -> list[str]:
    """Markdown rows of a ``bench_sharpen`` report for the guided model ``stem`` (none: [])."""
    ratio = {"s2_guided_x2": 2, "s2_guided_x6": 6, "pan_guided_x2": 2}.get(stem)
    rows = ["| scene | ratio | bicubic | glp | model | model - bicubic |", "|---|---|---|---|---|---|"]
    for run in report.get("runs", []):
        for group in run.get("groups", []):
            m = group["methods"]
            if group["ratio"][0] != ratio or "psnr_mean" not in m.get("model", {}):
                continue
            if stem.startswith("s2") != run["scene"].startswith("S2"):
                continue
            b, g, k = (
                m["bicubic"]["psnr_mean"],
                m.get("glp", {}).get("psnr_mean", float("nan")),
                m["model"]["psnr_mean"],
            )
            rows.append(f"| {run['scene']} | x{ratio} | {b:.2f} | {g:.2f} | {k:.2f} | {k - b:+.2f} |")
    return rows if len(rows) > 2 else []


def main() -> None:
    parser = argparse.ArgumentParser(description="write MODEL.md for MODEL.safetensors")
    parser.add_argument("checkpoint")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument(
        "--evaluation", nargs="*", default=(), help="evaluate JSON results (with a 'model' row) to include"
    )
    args = parser.parse_args()
    path = Path(args.checkpoint)
    results = [json.loads(Path(p).read_text()) for p in args.evaluation]
    path.with_suffix(".md").write_text(model_card(path, args.command, results))


if __name__ == "__main__":
    main()
