"""The gallery's SQLite schema and its migrations (one version number for the whole file)."""

from __future__ import annotations

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    crop_png BLOB NOT NULL,
    box TEXT,
    landmarks TEXT,
    created TEXT NOT NULL,
    chip_template TEXT,
    chip_landmarks TEXT,
    content_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS faces_person ON faces(person_id);
CREATE INDEX IF NOT EXISTS faces_content ON faces(person_id, content_sha256);
CREATE TABLE IF NOT EXISTS embeddings (
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (face_id, model_key)
);
CREATE INDEX IF NOT EXISTS embeddings_model ON embeddings(model_key);
"""
# Version 1 galleries kept ArcFace crops (112 px) and no content hash.
MIGRATE_FROM_1 = (
    "ALTER TABLE faces ADD COLUMN chip_template TEXT",
    "ALTER TABLE faces ADD COLUMN chip_landmarks TEXT",
    "ALTER TABLE faces ADD COLUMN content_sha256 TEXT",
    "UPDATE faces SET chip_template = 'arcface'",
    "CREATE INDEX IF NOT EXISTS faces_content ON faces(person_id, content_sha256)",
    "UPDATE schema_version SET version = 2",
)
