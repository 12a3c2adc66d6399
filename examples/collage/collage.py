"""Lay the blurred images over the edge-enhanced ones in a grid: collage.png."""

import os
from pathlib import Path

from PIL import Image

rows = [Path(os.environ["ALAMODE_INPUT_BLUR"]), Path(os.environ["ALAMODE_INPUT_EDGE_ENHANCE"])]
images = [[Image.open(p) for p in sorted(row.glob("*.png"))] for row in rows]
width, height = images[0][0].size
sheet = Image.new("RGB", (width * len(images[0]), height * len(images)), "white")
for y, row in enumerate(images):
    for x, image in enumerate(row):
        sheet.paste(image, (x * width, y * height))
target = Path(os.environ["ALAMODE_OUTPUT"]) / "collage.png"
sheet.save(target)
print(f"collage: {target}")
