"""The torch-free catalog of names equals what the registries hold."""

from __future__ import annotations

import pytest

from facemetric import catalog
from facemetric.errors import ConfigError


def test_catalog_lists_exactly_what_is_registered() -> None:
    from facemetric.data.align import TEMPLATES
    from facemetric.data.detect import available_detectors
    from facemetric.models import available_backbones
    from facemetric.models.pretrained import available_pretrained
    from facemetric.train.losses import available_losses
    from facemetric.train.teacher import available_teachers
    from facemetric.train.triplets import available_miners

    assert sorted(catalog.BACKBONES) == available_backbones()
    assert sorted(catalog.PRETRAINED) == available_pretrained()
    assert sorted(catalog.LOSSES) == available_losses()
    assert sorted(catalog.MINERS) == available_miners()
    assert sorted(catalog.TEACHERS) == available_teachers()
    assert sorted(catalog.DETECTORS) == available_detectors()
    assert sorted(catalog.TEMPLATES) == sorted(TEMPLATES)


def test_check_name_names_the_field_and_the_choices() -> None:
    catalog.check_name("resnet50", catalog.BACKBONES, "--backbone")
    catalog.check_name(None, catalog.BACKBONES, "--backbone")
    with pytest.raises(ConfigError, match=r"--backbone: unknown name 'resnet19'; .*resnet18"):
        catalog.check_name("resnet19", catalog.BACKBONES, "--backbone")
