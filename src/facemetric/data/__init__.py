"""The data stage: photo folders ``ROOT/person/*`` -> checked, renamed, split, aligned crops.

Re-exports only. Importing this package stays light (no torch): detection and alignment live in
their own modules and are imported where they are used.
"""

from facemetric.data.image import IMAGE_EXTENSIONS, decode_image_bytes, is_image_path, load_image
from facemetric.data.rename import Move, RenameResult, plan_renames, rename_images_in_folder
from facemetric.data.scan import CheckConfig, CheckReport, check_dataset, render_report
from facemetric.data.split import (
    Split,
    SplitConfig,
    list_identity_images,
    make_split,
    read_split,
    split_dataset,
    write_split,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "CheckConfig",
    "CheckReport",
    "Move",
    "RenameResult",
    "Split",
    "SplitConfig",
    "check_dataset",
    "decode_image_bytes",
    "is_image_path",
    "list_identity_images",
    "load_image",
    "make_split",
    "plan_renames",
    "read_split",
    "rename_images_in_folder",
    "render_report",
    "split_dataset",
    "write_split",
]
