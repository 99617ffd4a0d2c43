"""The trainer's run-policy checks (rsb.training.trainer)."""
from __future__ import annotations

import pytest

from rsb.errors import UserError
from rsb.training.trainer import check_bad_images


def test_too_many_unreadable_images_stop_the_run_in_one_sentence():
    check_bad_images(1, 10, 0.0)  # one is always tolerated
    check_bad_images(10, 1000, 0.01)
    with pytest.raises(UserError) as e:
        check_bad_images(11, 1000, 0.01)
    assert str(e.value) == ("11 of 1000 training samples were unreadable images (more than "
                            "run.max_bad_image_fraction=0.01); see the warnings above for their paths and fix or "
                            "remove them.")
