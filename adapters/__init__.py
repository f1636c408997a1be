"""Format adapters (installed as ``geo_med_sr.adapters``).

These are the only modules that import nibabel, SimpleITK, pydicom or rasterio. Each
converts between a file format and :class:`geo_med_sr.spatial.SpatialArray` (centre-anchored
affine, channel-first array, spatial axes in index order fastest first).
"""
