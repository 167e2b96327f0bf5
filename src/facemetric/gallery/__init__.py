"""The gallery: reference faces of the people to recognise, and search over their embeddings."""

from facemetric.gallery.embeddings import GalleryEmbeddings
from facemetric.gallery.index import (
    ExactIndex,
    FaissFlatIndex,
    SearchIndex,
    available_indexes,
    create_index,
    register_index,
)
from facemetric.gallery.keys import model_key
from facemetric.gallery.listing import Face, Person
from facemetric.gallery.records import FaceRecord
from facemetric.gallery.store import GalleryStore

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
