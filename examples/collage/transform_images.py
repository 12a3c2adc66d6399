"""Apply one Pillow filter (blur or edge_enhance) to every downloaded image."""

import os
import sys
from pathlib import Path

from PIL import Image, ImageFilter

FILTERS = {"blur": ImageFilter.GaussianBlur(4), "edge_enhance": ImageFilter.EDGE_ENHANCE_MORE}

name = sys.argv[1]
source = Path(os.environ["ALAMODE_INPUT_DOWNLOAD_IMAGES"])
out = Path(os.environ["ALAMODE_OUTPUT"])
for path in sorted(source.glob("*.png")):
    Image.open(path).filter(FILTERS[name]).save(out / path.name)
print(f"{name}: filtered {len(list(out.glob('*.png')))} images")
