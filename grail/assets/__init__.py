"""Assets: procedural objects/furniture/terrain and imported meshes, metric and Z up.

Public API::

    from grail.assets import Asset, make_object, make_terrain, surface_height, import_mesh, write_asset
"""

from .io import read_asset_files, write_asset
from .mesh_import import AssetSizeWarning, import_mesh
from .params import OBJECT_KINDS, TERRAIN_KINDS
from .procedural import make_object, make_terrain, surface_height
from .types import Asset

__all__ = [
    "Asset",
    "AssetSizeWarning",
    "OBJECT_KINDS",
    "TERRAIN_KINDS",
    "import_mesh",
    "make_object",
    "make_terrain",
    "read_asset_files",
    "surface_height",
    "write_asset",
]
