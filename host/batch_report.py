"""The ``--report`` contact sheet: the first frame of every job beside its parameters and status.

``.html`` gives a grid of cards, ``.md`` a Markdown table; the frames are PNG files in ``<report>_files/``.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from .batch_manifest import Manifest

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mkv", ".mov")


def _first_frame(folder: Path, outputs: list[dict[str, Any]], destination: Path) -> bool:
    """Write the first frame of a job's first image or video output to ``destination`` (PNG)."""
    paths = [folder / item["path"] for item in outputs]
    pngs = [p for p in paths if p.suffix.lower() == ".png"]
    if pngs:
        shutil.copyfile(pngs[0], destination)
        return True
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    if not videos:
        return False
    import torch

    from ..pipelines.video import read_video
    from ..pipelines.video.png import encode_png

    frames, _fps, _info = read_video(videos[0], max_frames=1)
    pixels = (frames[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    destination.write_bytes(encode_png(pixels))
    return True


def _cards(outcome: Any, manifest: Manifest, files_dir: Path) -> list[dict[str, Any]]:
    """Per job: id, label, status, error text and the relative path of its frame (or None)."""
    cards = []
    for job in outcome.jobs:
        record = outcome.records.get(job.id, {})
        status = record.get("status", "not run")
        image = None
        if status == "ok":
            target = files_dir / f"{job.id}.png"
            if _first_frame(manifest.job_dir(job.id), record.get("outputs") or [], target):
                image = f"{files_dir.name}/{target.name}"
        error = record.get("error") or {}
        message = f"{error.get('class') or ''}: {error.get('message')}" if error else ""
        cards.append({"id": job.id, "label": job.label(), "status": status, "error": message, "image": image})
    return cards


def _markdown(cards: list[dict[str, Any]]) -> str:
    """A Markdown table of the cards."""
    lines = ["| first frame | job | status |", "| --- | --- | --- |"]
    for card in cards:
        image = f"![{card['id']}]({card['image']})" if card["image"] else ""
        text = f"`{card['id']}` {card['label']}".replace("|", "\\|")
        status = card["status"] + (f": {card['error']}" if card["error"] else "")
        lines.append(f"| {image} | {text} | {status.replace('|', '/').replace(chr(10), ' ')} |")
    return "\n".join(lines) + "\n"


def _html(cards: list[dict[str, Any]]) -> str:
    """An HTML page with a grid of cards."""
    items = []
    for card in cards:
        image = (
            f'<img src="{html.escape(card["image"])}" alt="{card["id"]}">'
            if card["image"]
            else '<div class="none"></div>'
        )
        error = f'<p class="error">{html.escape(card["error"])}</p>' if card["error"] else ""
        items.append(
            f'<figure class="{card["status"]}">{image}<figcaption><code>{card["id"]}</code> '
            f"<b>{card['status']}</b><br>{html.escape(card['label'])}{error}</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;background:#222;color:#ddd}main{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;width:200px;background:#333;padding:6px}img,.none{width:200px;height:200px;"
        "object-fit:contain;image-rendering:pixelated;background:#000}figcaption{font-size:12px;word-break:break-all}"
        ".failed,.invalid{outline:2px solid #c33}.error{color:#f88}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>FrameFold batch</title><style>{style}</style>"
        f"</head><body><h1>FrameFold batch: {len(cards)} jobs</h1><main>{''.join(items)}</main></body></html>\n"
    )


def write_report(outcome: Any, manifest: Manifest, path: Path) -> Path:
    """Write the contact sheet (HTML for ``.html``/``.htm``, else Markdown) and its frame files."""
    path = Path(path)
    files_dir = path.with_name(path.stem + "_files")
    files_dir.mkdir(parents=True, exist_ok=True)
    cards = _cards(outcome, manifest, files_dir)
    text = _html(cards) if path.suffix.lower() in (".html", ".htm") else _markdown(cards)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
