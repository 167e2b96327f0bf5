"""The gallery: reference faces of the people to recognise, and search over their embeddings."""

from facemetric.gallery.index import (
    ExactIndex,
    FaissFlatIndex,
    SearchIndex,
    available_indexes,
    create_index,
    register_index,
)
from facemetric.gallery.store import (
    Face,
    FaceRecord,
    GalleryEmbeddings,
    GalleryStore,
    Person,
    model_key,
)

__all__ = [
    "ExactIndex",
    "Face",
    "FaceRecord",
    "FaissFlatIndex",
    "GalleryEmbeddings",
    "GalleryStore",
    "Person",
    "SearchIndex",
    "available_indexes",
    "create_index",
    "model_key",
    "register_index",
]
