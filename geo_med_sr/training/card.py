"""Write a model card (Markdown) for a checkpoint from its own recorded configuration.

Usage: ``python -m geo_med_sr.training.card MODEL.safetensors --command "geo-med-sr train ..."``
writes ``MODEL.md`` next to it: data files with SHA-256, command, steps, time, validation PSNR.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from ..checkpoint import sidecar_path


def model_card(checkpoint: Path, command: str) -> str:
    """The Markdown card of ``checkpoint`` (read from its JSON sidecar)."""
    info = json.loads(sidecar_path(checkpoint).read_text())
    train = info.get("extra", {}).get("train", {})
    config = train.get("config", {})
    lines = [
        f"# {checkpoint.stem}",
        "",
        f"- Network: `{info['network']['name']}` {json.dumps(info['network']['params'])}",
        f"- Scale {info['scale']}, {info['spatial_dims']}D, {info['in_channels']} channel (multiband images run band by band)",
        f"- Degradation: {json.dumps(config.get('degradation'))}; normalisation: {json.dumps(config.get('normalize'))}",
        f"- Trained by this project's own command, {train.get('step')} steps in {train.get('seconds', 0):.0f} s on {platform.machine()} CPU ({platform.platform()}):",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Validation PSNR (normalised values, held-out files, block-average degradation)",
        "",
        "| step | PSNR dB |",
        "|---|---|",
        *[f"| {step} | {value:.3f} |" for step, value in train.get("val_psnr", [])],
        "",
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
    args = parser.parse_args()
    path = Path(args.checkpoint)
    path.with_suffix(".md").write_text(model_card(path, args.command))


if __name__ == "__main__":
    main()
