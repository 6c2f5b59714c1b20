"""Helpers shared by the pipeline tests (imported as a plain module: the test folder is on sys.path)."""

from __future__ import annotations

import io

from PIL import Image

API_KEY = "sk-integration-test-key-0123456789"
WEBHOOK_SECRET_RAW = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # 32 base64 chars, as the template generates
RED, BLUE = (220, 40, 40), (40, 60, 220)


def frame_png(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()
