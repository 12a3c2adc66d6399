"""'Download' the source images: generated here, so the example needs no network."""

import os
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256


def picture(seed: int) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (30 + 50 * seed, 90, 160 - 30 * seed))
    draw = ImageDraw.Draw(image)
    for step in range(12):
        offset = (step * 23 + seed * 41) % SIZE
        colour = ((step * 40) % 256, (seed * 70 + step * 15) % 256, (step * 90) % 256)
        draw.ellipse((offset - 40, offset // 2, offset + 40, offset // 2 + 80), fill=colour)
        draw.line((0, offset, SIZE, SIZE - offset), fill=(255, 255, 255), width=3)
    return image


out = Path(os.environ["ALAMODE_OUTPUT"])
for seed in range(4):
    picture(seed).save(out / f"image{seed}.png")
print(f"wrote 4 images to {out}")
