"""The error types cross process boundaries (Dask results, multiprocessing) as themselves."""

from __future__ import annotations

import pickle

import pytest

from no2hotspots.errors import ConfigError, InputFileError, UserError, ValidationFailed


@pytest.mark.parametrize(
    "error, fields",
    [
        (ConfigError("detect.threshold", "must be in (0, 1]"), ("key", "problem")),
        (InputFileError("/data/g.nc", "cannot be opened as NetCDF"), ("path", "problem")),
        (ValidationFailed("suite grid-osse: 2 expectations failed"), ()),
        (UserError("one line"), ()),
    ],
)
def test_errors_pickle_with_their_fields_and_message(error, fields):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error) and back.exit_code == error.exit_code
    assert all(getattr(back, f) == getattr(error, f) for f in fields)
