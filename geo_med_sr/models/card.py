"""Write a model card (Markdown) for a checkpoint from its own recorded configuration.

Usage: ``python -m geo_med_sr.models.card MODEL.safetensors --command "geo-med-sr train ..."``
writes ``MODEL.md`` next to it: data files with SHA-256, command, steps, time, validation PSNR;
``--evaluation RESULT.json ...`` (from ``geo-med-sr evaluate --json`` or
``benchmarks/bench_quality.py``) adds the scores on the validation files.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from geo_med_sr.models.checkpoint import sidecar_path


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
    lines = [
        f"# {checkpoint.stem}",
        "",
        f"- Network: `{info['network']['name']}` {json.dumps(info['network']['params'])}",
        f"- Scale {info['scale']}, {info['spatial_dims']}D, {info['in_channels']} channel (multiband images run band "
        "by band)",
        f"- Degradation: {json.dumps(config.get('degradation'))}; normalisation: {json.dumps(config.get('normalize'))}",
        f"- Trained by this project's own command, {train.get('step')} steps in {train.get('seconds', 0):.0f} s on "
        f"{platform.machine()} CPU ({platform.platform()}):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"## Validation PSNR during training (normalised values, held-out files, `{degradation}` degradation)",
        "",
        *(
            ["| step | PSNR dB |", "|---|---|", *[f"| {step} | {value:.3f} |" for step, value in history]]
            if history
            else ["None recorded (trained without `--val`)."]
        ),
        "",
        *(
            ["## Scores on the validation files (`geo-med-sr evaluate`, PSNR dB)", "", *evaluation_rows(evaluation), ""]
            if evaluation
            else []
        ),
        "## Training data (SHA-256)",
        "",
        "| file | sha256 |",
        "|---|---|",
        *[f"| {f['name']} | `{f['sha256']}` |" for f in train.get("files", [])],
        "",
        "Sources and licences of these files: `../shared/data/train/README.md` of the project workspace.",
    ]
    return "\n".join(lines) + "\n"


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
