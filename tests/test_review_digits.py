"""digits.parse_digits promises a number or None, never an exception."""

from storages_mogile.digits import parse_digits


def test_a_number_longer_than_int_converts_is_none_not_a_value_error() -> None:
    """``int()`` refuses more than 4300 digits (sys.int_info.default_max_str_digits):
    parse_digits raised ValueError where its callers expect None (a node's
    Content-Length in StorageNodes.head/open: ValueError out of stat() and
    read_file() instead of trying the next copy)."""
    assert parse_digits("1" * 5000) is None
