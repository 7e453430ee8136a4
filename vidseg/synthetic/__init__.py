"""Procedural street scenes with exact labels, optical flow and occlusion, encoded as real video.

A `StreetScene` is a deterministic (by seed) 2.5D driving scene seen by a camera that drives forward along a
straight four-lane road, sways in its lane and pans (yaw) left and right: a city street, a suburb or an open
rural road (`SceneConfig.setting`). Everything in it is a planar surface:

- the sky with its clouds, and the distant hills, at infinity (their flow comes from the camera's yaw alone);
- the ground plane Y = 0: road (with lane markings), sidewalks, terrain (front yards);
- vertical faces of axis-aligned boxes: building blocks (facades and end walls, with windows), walls, fences,
  hedges, bushes, tree trunks and crowns, the edges of woods, street-lamp and utility poles, traffic signs and
  traffic lights on poles; and moving
  boxes with their own velocities: cars, trucks, buses, motorcycles and bicycles with riders, pedestrians.
  A face's outline is a column-wise interval [bottom(a), top(a)] of heights along the face (car cabins,
  wheels, heads and legs, round signs, tree crowns), so a box reads as a car, a person or a tree.

The camera has no pitch or roll, so the horizontal part of every ray depends only on the image column: the
depth of any vertical face is a function of the column, and its coverage of a column is one interval of rows.
Rendering is a column-wise ray cast into a z-buffer, vectorised with NumPy (no per-pixel Python); textures come
from a mip-mapped RGBA atlas addressed by each surface's own coordinates, so they stick to the surfaces.

Exact ground truth. Every pixel p of frame t lies on a known surface at known surface coordinates; moving that
point with its surface to time t_ref and projecting it with the camera of t_ref gives where p was in frame
t_ref, which is the backward flow: p + flow(p) (pixels, x then y; pixel centres at integer coordinates, the
`exact` convention of `vidseg.kernels.reference.warp`). The point is occluded in t_ref (occlusion True) when
the reprojected position falls outside the image area [-0.5, W-0.5) x [-0.5, H-0.5), lies behind the camera
of t_ref, or the front-most surface at that position in t_ref (read at the nearest pixel centre) is not the
same surface. Surfaces have stable ids across frames (`SyntheticFrame.surfaces`: 0 sky, 1 ground).

Known approximations (the flow itself is exact to float32; tests/synthetic/test_synthetic.py bounds the rest):
- occlusion is decided at the nearest pixel centre of the reprojected point, so it can be wrong on pixels
  within half a pixel of an occlusion boundary;
- textures are sampled bilinearly (in 1/16 texel steps) from one mip level chosen per column (faces) or per
  row (ground), and a haze fades colours with depth, so brightness constancy holds up to sampling, mip-level
  switches and the haze change between frames (a few grey levels; more at sharp texture and object edges);
  lighting drift and moving contact shadows break it on purpose (`SceneConfig.lighting`, `.shadows`);
- objects are rigid boxes (no walking legs, no rotating wheels), all moving parallel to the road;
- content exists up to a distance ahead: buildings to `SceneConfig.view_distance`, vehicles to 80 % of it,
  vegetation, walls and fences 65 %, poles, signs and lights 50 %, people and two-wheelers 40 %; things appear
  there (hazed), and such pixels are occluded in earlier frames, as the surface was not in them;
- no trains (trainId 16) appear.

`write_clip` renders a clip, encodes it (H.264 / HEVC / MPEG-4 Part 2, `vidseg.video.encode`) with an exact GOP
structure and writes the ground truth beside it; `load_ground_truth` reads it back.

The camera records the frame with an exposure and white balance, motion blur and sensor noise
(`SceneConfig.exposure`, `.motion_blur`, `.noise`); they change pixels, never labels or flow. `road_clip` and
`write_road_set` (presets) draw whole clips from a seed, for training and for a held-out set that differs on
purpose (lighting, noise, blur, compression, camera).

Files, one job each: config (what a scene is configured by, what rendering gives back), textures and atlas
(tiles, mip-mapped and sampled), outlines, street and roadside (what is where and how it moves), camera (pose
over time, rays), sky (sky, clouds, hills, haze, light), ground (road plane, markings, shadows), faces (box faces
into the z-buffer), render (the per-pixel pass: colour, labels, flow, occlusion), sensor (exposure, motion blur,
noise), scene (StreetScene), clip (write_clip), truth (the ground-truth format) and presets (random road clips).
"""

from vidseg.classes import CITYSCAPES, IGNORE_INDEX
from vidseg.synthetic.clip import CODECS, write_clip
from vidseg.synthetic.config import SETTINGS, TERRAINS, ClipInfo, SceneConfig, SyntheticFrame
from vidseg.synthetic.presets import HELDOUT_SEED0, RoadClip, road_clip, write_road_set
from vidseg.synthetic.scene import StreetScene
from vidseg.synthetic.truth import load_ground_truth

CLASS_NAMES = CITYSCAPES.classes  # the labels are Cityscapes trainIds 0..18

__all__ = [
    "SceneConfig",
    "StreetScene",
    "SyntheticFrame",
    "ClipInfo",
    "write_clip",
    "load_ground_truth",
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "CODECS",
    "SETTINGS",
    "TERRAINS",
    "RoadClip",
    "road_clip",
    "write_road_set",
    "HELDOUT_SEED0",
]
