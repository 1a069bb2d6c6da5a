"""A synthetic SMPL-X model file with the real array shapes and random values (tests only)."""

import numpy as np

NV, NF, NJ = 10475, 20908, 55
BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


def write_synthetic_smplx(path):
    rng = np.random.default_rng(0)
    # crude standing body in SMPL-X's frame (y up, x left, z forward), ~1.3 m tall
    joints_y = np.linspace(-0.6, 0.6, NJ)
    parents = BODY_PARENTS + [15, 15, 15] + [20] * 15 + [21] * 15
    jpos = np.stack([rng.uniform(-0.2, 0.2, NJ), joints_y, np.zeros(NJ)], 1)
    jpos[:22, 1] = [0, -.05, -.05, .1, -.35, -.35, .2, -.6, -.6, .3, -.65, -.65, .45, .4, .4, .55,
                    .4, .4, .2, .2, 0, 0]
    jpos[[1, 4, 7, 10, 13, 16, 18, 20], 0] = 0.1
    jpos[[2, 5, 8, 11, 14, 17, 19, 21], 0] = -0.1
    owner = rng.integers(0, 22, NV)
    v = jpos[owner] + rng.normal(0, 0.03, (NV, 3))
    v[:, 1] = np.clip(v[:, 1], -0.66, 0.7)
    weights = np.zeros((NV, NJ))
    weights[np.arange(NV), owner] = 1.0
    jreg = np.zeros((NJ, NV))
    for j in range(NJ):
        jreg[j, j * 100:(j + 1) * 100] = 1.0 / 100
    v[: NJ * 100] = np.repeat(jpos, 100, axis=0)
    kintree = np.array([[4294967295] + parents[1:], list(range(NJ))], dtype=np.int64)
    np.savez(path,
             v_template=v.astype(np.float32), f=rng.integers(0, NV, (NF, 3)).astype(np.int32),
             shapedirs=(rng.normal(0, 1e-3, (NV, 3, 400))).astype(np.float32),
             posedirs=np.zeros((NV, 3, 486), np.float32), J_regressor=jreg.astype(np.float32),
             weights=weights.astype(np.float32), kintree_table=kintree,
             hands_componentsl=np.eye(45, dtype=np.float32),
             hands_componentsr=np.eye(45, dtype=np.float32),
             hands_meanl=np.zeros(45, np.float32), hands_meanr=np.zeros(45, np.float32),
             lmk_faces_idx=np.zeros(51, np.int64), lmk_bary_coords=np.full((51, 3), 1 / 3),
             dynamic_lmk_faces_idx=np.zeros((79, 17), np.int64),
             dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3))
    return path
