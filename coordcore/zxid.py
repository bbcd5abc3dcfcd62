"""Zxid packing: epoch in the high 32 bits, counter in the low 32 bits."""


def make(epoch: int, counter: int) -> int:
    return (epoch << 32) | (counter & 0xFFFFFFFF)


def epoch(zxid: int) -> int:
    return zxid >> 32


def counter(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


def fmt(zxid: int) -> str:
    return "0x%x" % zxid
