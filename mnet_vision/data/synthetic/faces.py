"""The procedural face renderer of the synthetic face-identity set
(:mod:`mnet_vision.data.synthetic.identities` lays the photos out on disk).

An *identity* is a stable random composition of parts: head outline and skin tone, ears, hair
style and colour, eye spacing/size/colour, eyebrows, nose, mouth, and optional glasses, facial
hair, moles and blush. Each part is drawn from a small palette or a continuous range, so many
identities share any one part and only the combination tells them apart. Every *image* of an
identity is a new capture: head yaw/pitch (the inner features slide across the face), expression
(smile, open mouth, blink), rotation, scale and position of the head, a random background and
shirt, sometimes a hat or an occluder, side lighting, brightness/contrast/white balance, blur and
noise. An identity is a pure function of the rng it is drawn from (:func:`draw_identity`), a
photo of the identity and the rng of its capture (:func:`draw_face_image`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mnet_vision.data.synthetic.drawing import background

SUPERSAMPLE = 2  # draw at twice the size, then downsample: anti-aliased edges at any image_size

Colour = tuple[int, int, int]

# Palettes (RGB) with the probability of each entry; a per-identity jitter is added on top.
SKIN_LIGHT, SKIN_DARK = np.array([250, 220, 195]), np.array([85, 55, 38])
HAIR = ((25, 20, 20), (60, 40, 30), (110, 75, 45), (150, 70, 35), (215, 185, 120), (150, 150, 150),
        (225, 225, 220), (50, 80, 200), (215, 90, 160), (60, 150, 80))
HAIR_P = (0.22, 0.2, 0.16, 0.08, 0.12, 0.08, 0.04, 0.033, 0.033, 0.034)
IRIS = ((70, 40, 20), (40, 25, 15), (60, 110, 190), (70, 130, 70), (120, 125, 130), (130, 100, 50))
LIPS = ((180, 90, 90), (150, 70, 70), (200, 60, 80), (120, 60, 60), (190, 120, 110))
FRAMES = ((20, 20, 20), (120, 70, 30), (180, 30, 30), (30, 60, 160), (200, 200, 200))
HAIR_STYLES = ("bald", "short", "long", "bangs", "side_part", "curly", "bun", "mohawk")
NOSES = ("line", "triangle", "nostrils")
GLASSES = ("none", "round", "square", "sunglasses")
FACIAL_HAIR = ("none", "moustache", "goatee", "beard")


@dataclass(frozen=True)
class FaceIdentity:
    """The stable parts of one synthetic person. Lengths are fractions of the image side
    (``face_w``/``face_h``: half-width/half-height of the head), positions inside the face are in
    units of ``face_w`` (x) and ``face_h`` (y) from the head centre, y pointing down."""

    skin: Colour
    face_w: float
    face_h: float
    jaw: float  # 0: oval chin .. 0.5: narrow pointed chin
    ear_size: float
    earring: bool
    hair_style: str
    hair: Colour
    hairline: float  # how far down the forehead the hair reaches, 0..1
    hair_volume: float
    eye_y: float
    eye_dx: float
    eye_size: float
    eye_aspect: float
    iris: Colour
    brow_gap: float
    brow_tilt: float
    brow_width: float
    nose: str
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    smile: float
    lips: Colour
    lip_width: float
    glasses: str
    frame: Colour
    facial_hair: str
    moles: tuple[tuple[float, float], ...]
    blush: bool


def _jitter(rng: np.random.Generator, colour, spread: float) -> Colour:
    return tuple(int(v) for v in np.clip(np.asarray(colour) + rng.normal(0, spread, 3), 0, 255))


def _pick(rng: np.random.Generator, options: tuple, p: tuple[float, ...] | None = None):
    return options[int(rng.choice(len(options), p=p))]


def draw_identity(rng: np.random.Generator) -> FaceIdentity:
    """A random person: every part drawn independently from ``rng``."""
    skin = SKIN_LIGHT + (SKIN_DARK - SKIN_LIGHT) * rng.uniform() ** 1.3
    style = _pick(rng, HAIR_STYLES, (0.07, 0.22, 0.2, 0.15, 0.14, 0.1, 0.07, 0.05))
    return FaceIdentity(
        skin=_jitter(rng, skin, 4), face_w=rng.uniform(0.2, 0.27), face_h=rng.uniform(0.27, 0.34),
        jaw=rng.uniform(0, 0.5), ear_size=rng.uniform(0.15, 0.3), earring=rng.uniform() < 0.15,
        hair_style=style, hair=_jitter(rng, _pick(rng, HAIR, HAIR_P), 12), hairline=rng.uniform(0.15, 0.55),
        hair_volume=rng.uniform(0.03, 0.12),
        eye_y=rng.uniform(-0.2, 0.02), eye_dx=rng.uniform(0.3, 0.48), eye_size=rng.uniform(0.1, 0.18),
        eye_aspect=rng.uniform(0.4, 0.8), iris=_jitter(rng, _pick(rng, IRIS), 10),
        brow_gap=rng.uniform(0.1, 0.22), brow_tilt=rng.uniform(-0.12, 0.12), brow_width=rng.uniform(0.025, 0.07),
        nose=_pick(rng, NOSES), nose_len=rng.uniform(0.15, 0.35), nose_w=rng.uniform(0.08, 0.2),
        mouth_y=rng.uniform(0.42, 0.6), mouth_w=rng.uniform(0.25, 0.45), smile=rng.uniform(-0.04, 0.1),
        lips=_jitter(rng, _pick(rng, LIPS), 10), lip_width=rng.uniform(0.02, 0.06),
        glasses=_pick(rng, GLASSES, (0.7, 0.12, 0.12, 0.06)), frame=_jitter(rng, _pick(rng, FRAMES), 10),
        facial_hair=_pick(rng, FACIAL_HAIR, (0.7, 0.1, 0.1, 0.1)),
        moles=tuple((float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.3, 0.6)))
                    for _ in range(int(rng.choice(3, p=(0.65, 0.25, 0.1))))),
        blush=rng.uniform() < 0.3,
    )


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(min(255, c * factor)) for c in colour)


class _FaceCanvas:
    """Maps face coordinates (see :class:`FaceIdentity`) of one pose to canvas pixels and draws there."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, w: float, h: float, yaw: float, pitch: float):
        self.draw, self.cx, self.cy, self.w, self.h = draw, cx, cy, w, h
        # A turned head moves the inner features towards the side it turns to; the outline stays.
        self.dx, self.dy = yaw * 0.3, pitch * 0.25

    def xy(self, u: float, v: float, inner: bool = True) -> tuple[float, float]:
        return (self.cx + (u + self.dx * inner) * self.w, self.cy + (v + self.dy * inner) * self.h)

    def ellipse(self, u: float, v: float, ru: float, rv: float, inner: bool = True, **kw) -> None:
        x, y = self.xy(u, v, inner)
        self.draw.ellipse((x - ru * self.w, y - rv * self.h, x + ru * self.w, y + rv * self.h), **kw)

    def polygon(self, points: list[tuple[float, float]], inner: bool = True, **kw) -> None:
        self.draw.polygon([self.xy(u, v, inner) for u, v in points], **kw)

    def line(self, points: list[tuple[float, float]], width: float, inner: bool = True, **kw) -> None:
        self.draw.line([self.xy(u, v, inner) for u, v in points], width=max(1, round(width * self.w)), **kw)


def _head_outline(jaw: float, scale: float = 1.0, top_only: float | None = None) -> list[tuple[float, float]]:
    """The head outline in face units: an ellipse whose lower half narrows towards the chin by
    ``jaw``; with ``top_only`` only the part above ``v = top_only``."""
    points = []
    for k in range(64):
        t = 2 * math.pi * k / 64
        u, v = math.cos(t), math.sin(t)
        if v > 0:
            u *= 1 - jaw * v * v
        if top_only is None or v * scale <= top_only:
            points.append((u * scale, v * scale))
    return points


def _curve(u0: float, u1: float, v: float, bend: float, n: int = 12) -> list[tuple[float, float]]:
    """Points of a parabola from ``(u0, v)`` to ``(u1, v)`` sagging by ``bend`` in the middle."""
    return [(u0 + (u1 - u0) * i / n, v + bend * (1 - (2 * i / n - 1) ** 2)) for i in range(n + 1)]


def _draw_hair(face: _FaceCanvas, p: FaceIdentity, back: bool) -> None:
    """Hair behind the head (``back``: long hair) or on top of it."""
    style, hair, vol = p.hair_style, p.hair, p.hair_volume * 4
    if back:
        if style == "long":  # over the top of the head and down to the shoulders
            r = 1 + vol / 2
            arc = [(r * math.cos(t), r * math.sin(t)) for t in np.linspace(math.pi, 2 * math.pi, 24)]
            face.polygon(arc + [(r + 0.15, 1.05), (-r - 0.15, 1.05)], inner=False, fill=hair)
        return
    top = -1 + p.hairline  # lowest point of the hair on the forehead
    cap = _head_outline(0, 1 + vol / 2, top_only=top)
    if style in ("short", "long", "bangs", "side_part", "curly"):
        face.polygon(cap, inner=False, fill=hair)
    if style == "bangs":
        face.polygon([(-0.85, top - 0.05), (0.85, top - 0.05), (0.8, top + 0.22), (-0.8, top + 0.22)], inner=False,
                     fill=hair)
    elif style == "side_part":
        face.polygon([(-0.95, top - 0.1), (0.2, -1.0), (0.9, top), (0.5, top + 0.25), (-0.9, top + 0.1)], inner=False,
                     fill=hair)
    elif style == "curly":
        for k in range(13):
            t = math.pi + math.pi * k / 12
            r = 1 + vol / 2
            face.ellipse(math.cos(t) * r, math.sin(t) * r * 0.95, 0.22 + vol / 3, 0.17 + vol / 4, inner=False, fill=hair)
    elif style == "bun":
        face.polygon(cap, inner=False, fill=hair)
        face.ellipse(0, -1.1 - vol / 2, 0.35 + vol / 2, 0.22 + vol / 3, inner=False, fill=hair)
    elif style == "mohawk":
        face.ellipse(0, -0.85, 0.2, 0.35 + vol, inner=False, fill=hair)
    elif style == "bald":
        for side in (-1, 1):
            face.ellipse(side * 0.93, -0.15, 0.12, 0.3, inner=False, fill=hair)


def _draw_eye(face: _FaceCanvas, p: FaceIdentity, side: int, blink: bool, gaze: float, narrow: float) -> None:
    u, v = side * p.eye_dx, p.eye_y
    ru, rv = p.eye_size * narrow, p.eye_size * p.eye_aspect * face.w / face.h
    if blink:
        face.line(_curve(u - ru, u + ru, v, rv * 0.3), 0.04, fill=_shade(p.skin, 0.45))
    else:
        face.ellipse(u, v, ru, rv, fill=(245, 245, 240), outline=_shade(p.skin, 0.5))
        face.ellipse(u + gaze * ru * 0.4, v, rv * 0.85 * face.h / face.w, rv * 0.85, fill=p.iris)
        face.ellipse(u + gaze * ru * 0.4, v, rv * 0.35 * face.h / face.w, rv * 0.35, fill=(15, 10, 10))
    brow_v = v - rv - p.brow_gap
    tilt = p.brow_tilt * side
    face.line([(u - ru * 1.2, brow_v + tilt), (u + ru * 1.2, brow_v - tilt)], p.brow_width, fill=_shade(p.hair, 0.8))


def _draw_glasses(face: _FaceCanvas, p: FaceIdentity) -> None:
    r = p.eye_size * 1.7
    rv = r * face.w / face.h
    width = max(1, round(0.035 * face.w))
    for side in (-1, 1):
        u = side * p.eye_dx
        x, y = face.xy(u, p.eye_y)
        box = (x - r * face.w, y - rv * face.h, x + r * face.w, y + rv * face.h)
        fill = (25, 25, 30) if p.glasses == "sunglasses" else None
        if p.glasses == "square":
            face.draw.rectangle(box, outline=p.frame, width=width, fill=fill)
        else:
            face.draw.ellipse(box, outline=p.frame, width=width, fill=fill)
        face.line([(u + side * r, p.eye_y), (side * 1.0, p.eye_y - 0.05)], 0.03, fill=p.frame)
    face.line([(-p.eye_dx + r, p.eye_y), (p.eye_dx - r, p.eye_y)], 0.03, fill=p.frame)


def _draw_mouth(face: _FaceCanvas, p: FaceIdentity, smile: float, open_mouth: bool) -> None:
    w, v = p.mouth_w, p.mouth_y
    if open_mouth:
        face.ellipse(0, v + smile / 2, w * 0.7, 0.07 + p.lip_width, fill=(70, 20, 25), outline=p.lips,
                     width=max(1, round(p.lip_width * face.h * 0.6)))
        return
    upper = _curve(-w, w, v, smile)
    lower = _curve(w, -w, v + p.lip_width, smile + p.lip_width * 0.8)
    face.polygon(upper + lower, fill=p.lips)


def _draw_nose(face: _FaceCanvas, p: FaceIdentity) -> None:
    dark = _shade(p.skin, 0.75)
    top, bottom, w = p.eye_y + 0.05, p.eye_y + 0.05 + p.nose_len, p.nose_w
    if p.nose == "line":
        face.line([(0.03, top), (w * 0.6, bottom), (-w * 0.3, bottom)], 0.04, fill=dark)
    elif p.nose == "triangle":
        face.polygon([(0, top), (w, bottom), (-w, bottom)], fill=_shade(p.skin, 0.88))
    else:
        for side in (-1, 1):
            face.ellipse(side * w * 0.45, bottom, w * 0.25, 0.025, fill=_shade(p.skin, 0.5))


def _draw_facial_hair(face: _FaceCanvas, p: FaceIdentity) -> None:
    colour = _shade(p.hair, 0.9)
    if p.facial_hair == "beard":
        outline = [pt for pt in _head_outline(p.jaw) if pt[1] > p.mouth_y - 0.15]
        face.polygon(sorted(outline, key=lambda pt: math.atan2(pt[1], pt[0])), fill=colour)
    elif p.facial_hair == "goatee":
        face.ellipse(0, 0.5 * (p.mouth_y + 1 - p.jaw / 3) + 0.05, p.mouth_w * 0.5, 0.13, fill=colour)
    if p.facial_hair in ("moustache", "beard"):
        face.polygon(_curve(-p.mouth_w * 1.1, p.mouth_w * 1.1, p.mouth_y - 0.03, -0.05)
                     + _curve(p.mouth_w, -p.mouth_w, p.mouth_y - 0.1, -0.03), fill=colour)


@dataclass(frozen=True)
class _Capture:
    """What changes from one photo of a person to the next (see :func:`draw_face_image`)."""

    yaw: float
    pitch: float
    smile: float
    open_mouth: bool
    blink: bool
    gaze: float
    angle: float  # degrees, counter-clockwise
    scale: float
    shift: tuple[float, float]  # fraction of the image side
    shirt: Colour
    hat: Colour | None
    wears_glasses: bool
    occluder: bool


def _draw_capture(rng: np.random.Generator) -> _Capture:
    return _Capture(yaw=rng.uniform(-1, 1), pitch=rng.uniform(-1, 1), smile=rng.normal(0, 0.05),
                    open_mouth=rng.uniform() < 0.15, blink=rng.uniform() < 0.1, gaze=rng.uniform(-1, 1),
                    angle=rng.uniform(-15, 15), scale=rng.uniform(0.85, 1.12), shift=tuple(rng.uniform(-0.07, 0.07, 2)),
                    shirt=tuple(int(v) for v in rng.integers(0, 256, 3)),
                    hat=tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.uniform() < 0.1 else None,
                    wears_glasses=rng.uniform() < 0.9, occluder=rng.uniform() < 0.2)


def _draw_person(p: FaceIdentity, c: _Capture, size: int) -> Image.Image:
    """The person on a transparent ``size``-pixel RGBA layer, head upright and centred."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = p.face_w * size * c.scale, p.face_h * size * c.scale
    face = _FaceCanvas(draw, size / 2, size * 0.47, w, h, c.yaw, c.pitch)
    _draw_hair(face, p, back=True)
    face.polygon([(-0.45, 0.5), (0.45, 0.5), (0.5, 1.3), (-0.5, 1.3)], inner=False, fill=_shade(p.skin, 0.85))  # neck
    face.polygon([(-2.6, 1.5), (-0.5, 1.15), (0.5, 1.15), (2.6, 1.5), (2.8, 3), (-2.8, 3)], inner=False, fill=c.shirt)
    for side in (-1, 1):
        # the ear on the side the head turns away from shows more
        ru = p.ear_size * (1 - 0.5 * side * c.yaw) * 0.6
        face.ellipse(side * (0.97 + ru * 0.5), p.eye_y + 0.1, ru, p.ear_size, inner=False, fill=_shade(p.skin, 0.95))
        if p.earring:
            face.ellipse(side * (1.0 + ru * 0.5), p.eye_y + 0.1 + p.ear_size, 0.06, 0.05, inner=False,
                         fill=(230, 200, 60))
    face.polygon(_head_outline(p.jaw), inner=False, fill=p.skin)
    if p.blush:
        for side in (-1, 1):
            face.ellipse(side * p.eye_dx * 1.1, p.eye_y + 0.3, 0.16, 0.09, fill=(p.skin[0], *_shade(p.skin, 0.82)[1:]))
    for mu, mv in p.moles:
        face.ellipse(mu, mv, 0.035, 0.03, fill=_shade(p.skin, 0.45))
    _draw_facial_hair(face, p)
    for side in (-1, 1):
        # a turned head foreshortens the far eye
        _draw_eye(face, p, side, c.blink, c.gaze, 1 - 0.3 * max(0.0, -side * c.yaw))
    _draw_nose(face, p)
    _draw_mouth(face, p, p.smile + c.smile, c.open_mouth)
    _draw_hair(face, p, back=False)
    if p.glasses != "none" and c.wears_glasses:
        _draw_glasses(face, p)
    if c.hat is not None:
        face.polygon(_head_outline(0, 1.08, top_only=-0.45), inner=False, fill=c.hat)
        face.line([(-1.3, -0.45), (1.3, -0.45)], 0.12, inner=False, fill=_shade(c.hat, 0.7))
    return layer


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Lighting of one capture: side light, brightness/contrast, white balance, noise (uint8 HWC in and out)."""
    size = image.shape[0]
    x = image.astype(np.float32)
    t = np.linspace(-1, 1, size)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]
    x *= (1 + rng.uniform(0, 0.35) * ramp)[..., None]
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.65, 1.3)
    x *= rng.uniform(0.88, 1.12, 3)
    x += rng.normal(0, rng.uniform(2, 9), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def draw_face_image(identity: FaceIdentity, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 photo of ``identity``, its capture drawn from ``rng``: pose,
    expression, background, accessories, geometry and lighting. The head fills about 60 % of the
    frame, as in aligned face crops (MTCNN with a margin)."""
    capture = _draw_capture(rng)
    big = size * SUPERSAMPLE
    # the background at the output size: its noise would be averaged away by the downsampling anyway
    backdrop = background(rng, size)[0].resize((big, big), Image.BILINEAR)
    person = _draw_person(identity, capture, big)
    person = person.rotate(capture.angle, resample=Image.BILINEAR,
                           translate=tuple(s * big for s in capture.shift))
    image = backdrop.convert("RGBA")
    image.alpha_composite(person)
    if capture.occluder:  # a hand, a microphone, someone in front: hides a random part of the face
        draw = ImageDraw.Draw(image)
        cx, cy = rng.uniform(0.25, 0.75, 2) * big
        rx, ry = rng.uniform(0.08, 0.2, 2) * big
        shape = draw.ellipse if rng.uniform() < 0.5 else draw.rectangle
        shape((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    image = image.convert("RGB").resize((size, size), Image.BOX)
    if rng.uniform() < 0.3:  # out of focus / motion
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 64))
    return _photometric(rng, np.asarray(image))
