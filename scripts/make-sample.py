#!/usr/bin/python3
"""Draws assets/sample.jpg, the demo image: a small landscape (sky, sun,
hills, a red house, a tree) with photo-like gradients and noise. Needs
Debian's python3-pil; the output is committed so the demo needs no Python."""
import random
from PIL import Image, ImageDraw, ImageFilter

W, H = 640, 480
rnd = random.Random(7)
img = Image.new("RGB", (W, H))
px = img.load()
for y in range(H):
    for x in range(W):
        if y < 300:  # sky: blue to pale near the horizon
            t = y / 300
            c = (int(70 + 120 * t), int(130 + 90 * t), int(230 - 20 * t))
        else:  # grass
            t = (y - 300) / 180
            c = (int(60 + 30 * t), int(150 - 40 * t), int(50 + 10 * t))
        n = rnd.randint(-6, 6)
        px[x, y] = tuple(max(0, min(255, v + n)) for v in c)
d = ImageDraw.Draw(img)
d.ellipse((480, 50, 560, 130), fill=(255, 220, 90))
d.polygon([(0, 320), (160, 230), (330, 310), (480, 240), (640, 300), (640, 340), (0, 340)], fill=(70, 120, 60))
d.rectangle((200, 300, 330, 400), fill=(190, 40, 40))
d.polygon([(190, 300), (265, 240), (340, 300)], fill=(110, 60, 40))
d.rectangle((250, 340, 280, 400), fill=(90, 50, 30))
d.rectangle((215, 320, 240, 345), fill=(170, 210, 240))
d.rectangle((290, 320, 315, 345), fill=(170, 210, 240))
d.rectangle((432, 300, 448, 400), fill=(100, 70, 40))
d.ellipse((395, 220, 485, 320), fill=(40, 110, 40))
img = img.filter(ImageFilter.GaussianBlur(0.8))
img.save("assets/sample.jpg", quality=90)
