"""mode=export's surface: marching cubes on an alpha grid of the demo scene's analytic shapes."""

import numpy as np

from hw4_jax.nerf import demo_scene, export


def _sdf(p):
  """Signed distance to the demo scene's solids (two spheres and a box), as drawn by demo_scene."""
  out = []
  for _, fn, args in demo_scene.OBJECTS:
    c = args[0]
    if fn is demo_scene._sphere:
      out.append(np.linalg.norm(p - c, axis=-1) - args[1])
    else:
      q = np.abs(p - c) - args[1]
      out.append(np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0))
  return np.min(np.stack(out), 0)


def _components(faces, n):
  from scipy.sparse import coo_matrix
  from scipy.sparse.csgraph import connected_components
  e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
  return connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)),
                              directed=False)[0]


def test_surface_of_the_demo_shapes_lies_within_a_voxel():
  lo, hi, n = np.array([-1.2, -1.2, -1.0]), np.array([1.2, 1.2, 1.2]), 72
  axes = [np.linspace(lo[i], hi[i], n) for i in range(3)]
  pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
  voxel = float(((hi - lo) / (n - 1)).mean())
  d = _sdf(pts.reshape(-1, 3)).reshape(n, n, n) / voxel
  # alpha as DVGO learns it: a ramp over a voxel at the surface, and inside, deeper than three
  # voxels (never seen by a camera), a low arbitrary value that would make a second, inner surface
  alpha = np.clip(0.5 - d, 0.0, 1.0)
  alpha[d < -3] = 0.02
  verts, faces, normals = export.surface(alpha.astype(np.float32), lo, hi, 0.5)   # the ramp's middle
  dist = np.abs(_sdf(verts.astype(np.float64))) / voxel
  assert dist.max() <= 1.0, dist.max()                    # no inner shell: every vertex on the skin
  # the three solids, each one closed mesh (none inside another)
  assert _components(faces, len(verts)) == 3
  # outward normals: a step along the normal leaves the solid
  assert np.mean(_sdf(verts + normals * voxel) > _sdf(verts)) > 0.99
