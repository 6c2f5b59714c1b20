"""inbetween_media: join a storyboard's clips into one film, check it, and make its pictures.

Pure Python on PyAV (FFmpeg, libx264, AAC) and Pillow; no AWS, no network. Packaged as a Lambda layer of its
own (see media/README.md). The modules:

* :mod:`.layout`   the seam rule and the cross-fade as frame arithmetic
* :mod:`.stitch`   :func:`stitch_film`, :func:`plan_film`
* :mod:`.verify`   :func:`verify_film`
* :mod:`.pictures` :func:`poster`, :func:`contact_sheet`, :func:`clip_pictures`, :class:`FilmPictures`
* :mod:`.clip_stills` :class:`PyAvClipPictures`: a stored clip's poster and sheet (the completion function)
* :mod:`.probe`    :func:`probe_clip`
* :mod:`.frames`, :mod:`.audio` the pixel and sample work; :mod:`.synth` synthetic clips for tests and bench
"""

from .clip_stills import PyAvClipPictures
from .layout import FilmLayout
from .pictures import FilmPictures, clip_pictures, contact_sheet, poster
from .probe import ClipInfo, ProbeError, probe_clip
from .stitch import FilmPlan, StitchError, StitchReport, plan_film, stitch_film
from .verify import FilmExpectations, verify_film

__all__ = [
    "ClipInfo",
    "FilmExpectations",
    "FilmLayout",
    "FilmPictures",
    "FilmPlan",
    "ProbeError",
    "PyAvClipPictures",
    "StitchError",
    "StitchReport",
    "clip_pictures",
    "contact_sheet",
    "plan_film",
    "poster",
    "probe_clip",
    "stitch_film",
    "verify_film",
]
