"""`make demo` (python -m inbetween_local.demo) runs the sample job end to end and exits 0."""

from __future__ import annotations

import json

from inbetween_local import demo

from tests.e2e.conftest import STACK_MARKS, probe_mp4

pytestmark = STACK_MARKS


def test_the_demo_produces_a_video_its_metadata_and_a_verified_webhook(stack, tmp_path, capsys):
    # Given the local stack  When the demo runs on it
    code = demo.main(["--output-dir", str(tmp_path), "--timeout", "90"], stack=stack)

    # Then it succeeds and leaves the video and its metadata where it says
    out = capsys.readouterr().out
    assert code == 0, out
    assert "demo OK" in out
    assert probe_mp4(tmp_path / "video.mp4")["codec"] == "h264"
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["prompt"] == demo.DEFAULT_PROMPT
    # and it shows the deployment's default model, whose video has a soundtrack
    assert "model: wan2.7-i2v (the deployment's default" in out
    assert metadata["model"] == "wan2.7-i2v" and metadata["soundtrack"] == "generated"
    assert "aac soundtrack" in out
    # and it shows the verified webhook's headers and body
    assert "webhook-signature: v1," in out
    assert '"type": "video.generation.succeeded"' in out
