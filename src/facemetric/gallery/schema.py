"""The gallery database's schema, written once for every backend, and its migrations.

One version number covers the whole database: people, faces (reference and negative), their
embeddings per model, the change log that running servers follow, corrections, unknown faces and
their groups, and events. The DDL is portable SQL with a few type placeholders that each backend
fills (``{ID}``: an id column whose values are never handed out twice, SQLite
``AUTOINCREMENT`` or a PostgreSQL identity; ``{BLOB}``; ``{FLOAT}``: 64-bit floats).
"""

from __future__ import annotations

SCHEMA_VERSION = 3

TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gallery_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL,
    changes_floor BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id {ID},
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'reference',
    source TEXT,
    crop_png {BLOB} NOT NULL,
    box TEXT,
    landmarks TEXT,
    created TEXT NOT NULL,
    chip_template TEXT,
    chip_landmarks TEXT,
    content_sha256 TEXT,
    quality TEXT
);
CREATE INDEX IF NOT EXISTS faces_person ON faces(person_id);
CREATE INDEX IF NOT EXISTS faces_content ON faces(person_id, content_sha256);
CREATE TABLE IF NOT EXISTS embeddings (
    face_id BIGINT NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector {BLOB} NOT NULL,
    PRIMARY KEY (face_id, model_key)
);
CREATE INDEX IF NOT EXISTS embeddings_model ON embeddings(model_key);
CREATE TABLE IF NOT EXISTS changes (
    generation BIGINT NOT NULL,
    op TEXT NOT NULL,
    face_id BIGINT,
    person_id BIGINT,
    model_key TEXT
);
CREATE INDEX IF NOT EXISTS changes_generation ON changes(generation);
CREATE TABLE IF NOT EXISTS corrections (
    id {ID},
    kind TEXT NOT NULL,
    person_id BIGINT REFERENCES people(id) ON DELETE CASCADE,
    face_id BIGINT REFERENCES faces(id) ON DELETE SET NULL,
    created TEXT NOT NULL,
    source TEXT,
    similarity {FLOAT},
    note TEXT
);
CREATE INDEX IF NOT EXISTS corrections_person ON corrections(person_id);
CREATE TABLE IF NOT EXISTS unknown_groups (
    id {ID},
    created {FLOAT} NOT NULL,
    updated {FLOAT} NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    note TEXT
);
CREATE TABLE IF NOT EXISTS unknown_faces (
    id {ID},
    group_id BIGINT REFERENCES unknown_groups(id) ON DELETE SET NULL,
    seen_at {FLOAT} NOT NULL,
    source TEXT,
    camera TEXT,
    chip_png {BLOB} NOT NULL,
    chip_template TEXT,
    chip_landmarks TEXT,
    box TEXT,
    model_key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector {BLOB} NOT NULL,
    quality TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS unknown_faces_group ON unknown_faces(group_id);
CREATE INDEX IF NOT EXISTS unknown_faces_seen ON unknown_faces(seen_at);
CREATE TABLE IF NOT EXISTS events (
    id {ID},
    camera TEXT NOT NULL,
    person_id BIGINT REFERENCES people(id) ON DELETE SET NULL,
    person TEXT,
    nearest TEXT,
    first_seen {FLOAT} NOT NULL,
    last_seen {FLOAT} NOT NULL,
    similarity {FLOAT},
    frames INTEGER NOT NULL,
    track_id BIGINT,
    box TEXT,
    decision TEXT,
    chip_png {BLOB},
    snapshot_jpeg {BLOB},
    unknown_face_id BIGINT REFERENCES unknown_faces(id) ON DELETE SET NULL,
    bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_first_seen ON events(first_seen);
CREATE INDEX IF NOT EXISTS events_person ON events(person, first_seen);
CREATE INDEX IF NOT EXISTS events_camera ON events(camera, first_seen);
"""


def statements(template: str, types: dict[str, str]) -> list[str]:
    """The statements of ``template`` with the backend's ``types`` filled in."""
    filled = template
    for name, sql_type in types.items():
        filled = filled.replace("{" + name + "}", sql_type)
    return [s.strip() for s in filled.split(";") if s.strip()]


# SQLite galleries of version 1 kept ArcFace crops (112 px) and no content hash.
SQLITE_FROM_1 = (
    "ALTER TABLE faces ADD COLUMN chip_template TEXT",
    "ALTER TABLE faces ADD COLUMN chip_landmarks TEXT",
    "ALTER TABLE faces ADD COLUMN content_sha256 TEXT",
    "UPDATE faces SET chip_template = 'arcface'",
)
# Version 2 -> 3: people and faces are rebuilt with AUTOINCREMENT ids (an id is never handed out
# twice from now on), faces gain their kind and quality, the change counter moves from ``meta``
# into ``gallery_state``; the other tables are new. Runs with foreign keys off (SQLite's own
# procedure for changing a table's definition), inside one transaction.
SQLITE_FROM_2 = (
    "CREATE TABLE people_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
    "created TEXT NOT NULL)",
    "INSERT INTO people_v3 (id, name, created) SELECT id, name, created FROM people",
    "CREATE TABLE faces_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, person_id BIGINT NOT NULL "
    "REFERENCES people(id) ON DELETE CASCADE, kind TEXT NOT NULL DEFAULT 'reference', "
    "source TEXT, crop_png BLOB NOT NULL, box TEXT, landmarks TEXT, created TEXT NOT NULL, "
    "chip_template TEXT, chip_landmarks TEXT, content_sha256 TEXT, quality TEXT)",
    "INSERT INTO faces_v3 (id, person_id, source, crop_png, box, landmarks, created, "
    "chip_template, chip_landmarks, content_sha256) SELECT id, person_id, source, crop_png, "
    "box, landmarks, created, chip_template, chip_landmarks, content_sha256 FROM faces",
    "DROP TABLE faces",
    "DROP TABLE people",
    "ALTER TABLE people_v3 RENAME TO people",
    "ALTER TABLE faces_v3 RENAME TO faces",
    "DELETE FROM meta WHERE key = 'generation'",
)
