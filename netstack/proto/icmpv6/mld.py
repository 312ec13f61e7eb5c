"""The old name of the MLD messages, now :mod:`netstack.proto.mld.wire`."""

from __future__ import annotations

from ..mld.wire import (
    MLDV2_ROUTERS,
    GroupRecord,
    MldQuery,
    RecordType,
    build_query,
    build_report,
    build_v1,
    decode_mrc,
    decode_qqic,
    encode_mrc,
    encode_qqic,
    parse_query,
    parse_report,
    parse_v1,
)

__all__ = [
    "GroupRecord",
    "MLDV2_ROUTERS",
    "MldQuery",
    "RecordType",
    "build_query",
    "build_report",
    "build_v1",
    "decode_mrc",
    "decode_qqic",
    "encode_mrc",
    "encode_qqic",
    "parse_query",
    "parse_report",
    "parse_v1",
]
